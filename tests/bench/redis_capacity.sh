#!/usr/bin/env bash
# Redis' CPU per popbridge poll when Redis is busy (issue 15's sizing, docs/sizing.md): W7 counts
# Redis' work at about 100 polls/s, where every command costs the server a wake-up of its own.
# This drives a private redis-server with redis-benchmark, 50 connections, the exact commands
# of one poll with [state] redis (the lease claim and release scripts, taken from
# proxy/maildrop_lease.cpp, the MGET and DEL of the login counters; and, for %{stable}, HMGET
# of 20 map fields), on random maildrops, and prints each command's rate and the server's CPU
# per call (utime + stime growth / calls).
#
#   bash tests/bench/redis_capacity.sh [calls per command, default 200000]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
N=${1:-200000}
command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null ||
  { echo "redis_capacity.sh: needs redis-server and redis-benchmark (Debian redis-tools)" >&2; exit 2; }
WORK=$(mktemp -d /tmp/popbridge-redis-capacity-XXXXXX)
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
setsid redis-server --bind 127.0.0.1 --port "$PORT" --save "" --appendonly no --dir "$WORK" \
  --logfile "$WORK/redis.log" </dev/null >/dev/null 2>&1 &
PID=$!
trap 'kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do redis-cli -p "$PORT" PING >/dev/null 2>&1 && break; sleep 0.05; done
script() { # the Lua text of a constant in maildrop_lease.cpp
  awk -v name="$1" '$0 ~ "constexpr const char\\* " name " = R\"lua\\(" {on = 1; next}
    on && /^\)lua";/ {exit} on' "$ROOT/proxy/maildrop_lease.cpp"
}
CLAIM=$(script kClaimScript)
RELEASE=$(script kReleaseScript)
[[ -n $CLAIM && -n $RELEASE ]] || { echo "redis_capacity.sh: scripts not found" >&2; exit 1; }
ticks() { sed 's/^.*) //' "/proc/$PID/stat" | awk '{print $12 + $13}'; }
HZ=$(getconf CLK_TCK)
# A map of 20 entries of the size W7 stores, for HMGET.
redis-cli -p "$PORT" HSET popbridge:uidl:map $(for i in $(seq 20); do
  printf '1764700000:%d %0156d ' "$i" 0; done) >/dev/null
run() { # label, then the command
  local label=$1 t0 t1 out rps
  shift
  t0=$(ticks)
  out=$(redis-benchmark -p "$PORT" -n "$N" -c 50 -r 1000000 -q "$@" 2>/dev/null | tr '\r' '\n' |
    grep -m1 'requests per second' || true)
  t1=$(ticks)
  rps=$(echo "$out" | sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p')
  awk -v l="$label" -v r="$rps" -v d=$((t1 - t0)) -v n="$N" -v hz="$HZ" \
    'BEGIN { printf "%-34s %10.0f calls/s %8.1f us CPU per call\n", l, r, d / hz / n * 1e6 }'
}
echo "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), $N calls each, 50 connections, nproc $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg)"
run "EVAL claim (lease)" EVAL "$CLAIM" 3 "popbridge:maildrop:__rand_int__" \
  "popbridge:account:__rand_int__" "popbridge:fence:__rand_int__" "i:__rand_int__" 1 30000 10
run "EVAL release (lease)" EVAL "$RELEASE" 2 "popbridge:maildrop:__rand_int__" \
  "popbridge:account:__rand_int__" "i:__rand_int__" 0
run "MGET (login counters)" MGET "popbridge:fail:ip:__rand_int__" "popbridge:fail:user:__rand_int__"
run "DEL (login counters)" DEL "popbridge:fail:ip:__rand_int__" "popbridge:fail:user:__rand_int__"
run "HMGET 20 fields (%{stable} map)" HMGET popbridge:uidl:map $(for i in $(seq 20); do
  printf '1764700000:%d ' "$i"; done)
