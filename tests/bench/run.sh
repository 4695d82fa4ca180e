#!/usr/bin/env bash
# popbridge benchmark harness: popbridge (A) against Dovecot's POP3-over-IMAP proxy (B, imapc) and
# Dovecot's own POP3 (C), all on loopback over the same mail. See tests/bench/README.md.
#
#   bash tests/bench/run.sh            full run, 3 repetitions, writes RESULTS.md and ratios.svg
#   bash tests/bench/run.sh --quick    1 repetition, same outputs
#   bash tests/bench/run.sh --smoke    W1 on 100 messages, TOP 1 5 on a 1 MiB message and W6 on
#                                      10 devices, 1 repetition, no outputs (ctest)
#
# Options: --build-dir DIR (default build-bench), --no-build, --reps N, --workloads "W1 W3",
#          --modes "cold warm" (popbridge's fast paths off / on; default both),
#          --out FILE (markdown, default tests/bench/RESULTS.md), --keep (keep the work dir).
#          Workloads: W1 W1L W2 W3 W3T W4 W5 W6 W4S (default all). W3 brings W3T with it (TOP
#          1 5 on W3's message); W3T can also run alone. W4S is W4 on popbridge alone with
#          workers = 1 and 2 (scaling). W7 is issue 15's state backends: the W6 poll against
#          popbridge with [state] none, path (SQLite) and redis (a redis-server run.sh starts),
#          and the same with uidl_format = "%{stable}" when popbridge accepts it; plus the size
#          of the stable-UIDL map per 10k and 100k messages. tests/bench/state_cost.sh runs it.
# Environment: POPBRIDGE_BENCH_WORKERS (popbridge [server] workers, default 1),
#              POPBRIDGE_BENCH_TMPDIR (work dir parent; default /dev/shm if roomy, else /tmp).
set -euo pipefail
# The test suite's switch (tests/README.md) means nothing here: the modes choose popbridge's fast
# paths, and popbridge would warn about a POPBRIDGE_* variable it does not know.
unset POPBRIDGE_TEST_FAST_PATHS

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH_DIR="$ROOT/tests/bench"
BUILD="$ROOT/build-bench"
DO_BUILD=1
REPS=3
MODE=full
WORKLOADS="W1 W1L W2 W3 W4 W5 W6 W4S"
MODES="cold warm"
MODES_GIVEN=0
OUT="$BENCH_DIR/RESULTS.md"
KEEP=0
COMMAND_LINE="bash tests/bench/run.sh${*:+ $*}"

while (($#)); do
  case "$1" in
    --quick) REPS=1; MODE=quick ;;
    --smoke) REPS=1; MODE=smoke; WORKLOADS="W1 W3T W6"; DO_BUILD=0 ;;
    --build-dir) BUILD=$(cd "$2" && pwd); shift ;;
    --no-build) DO_BUILD=0 ;;
    --reps) REPS=$2; shift ;;
    --workloads) WORKLOADS=$2; shift ;;
    --modes) MODES=$2; MODES_GIVEN=1; shift ;;
    --out) OUT=$2; shift ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done
if ! [[ $REPS =~ ^[1-9][0-9]*$ ]]; then
  echo "run.sh: --reps needs a positive number" >&2
  exit 2
fi
EXPANDED=""
for w in $WORKLOADS; do
  case $w in
    W1 | W1L | W2 | W3 | W3T | W4 | W5 | W6 | W4S | W7) ;;
    *) echo "run.sh: unknown workload $w" >&2; exit 2 ;;
  esac
  [[ " $EXPANDED " == *" $w "* ]] || EXPANDED+=" $w"
  # TOP 1 5 on the big message runs right after W3's RETRs, on the same mail.
  if [[ $w == W3 && " $WORKLOADS " != *" W3T "* ]]; then EXPANDED+=" W3T"; fi
done
WORKLOADS=${EXPANDED# }
for m in $MODES; do
  case $m in cold|warm) ;; *) echo "run.sh: unknown mode $m (cold or warm)" >&2; exit 2 ;; esac
done
[[ -n ${MODES// /} ]] || { echo "run.sh: --modes needs cold, warm or both" >&2; exit 2; }

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------
# Sizes of the workloads.
W1_COUNT=10000; W1_SIZE=2048; W1_SESSIONS=40
W2_COUNT=200;   W2_SIZE=51200; W2_SESSIONS=5
W3_SIZE=$((50 * 1024 * 1024)); W3_SESSIONS=3
W3T_SESSIONS=10; W3T_LINES=5 # W3T: TOP 1 5 on W3's message, one session at a time
W4_USERS=500;   W4_COUNT=20; W4_SIZE=20480
# W1L: W1 on a mailbox of 100,000 small messages (issue 14: A ≤ 50 ms with a warm cache).
W1L_COUNT=100000; W1L_SIZE=1024; W1L_SESSIONS=10
# W6: devices w6u0 ... each poll their own mailbox once, get W6_NEW new messages, poll again.
W6_USERS=1000;  W6_COUNT=20; W6_SIZE=2048; W6_NEW=5; W6_CONCURRENCY=20
# W7: devices w7u0 ... poll their own mailbox twice (first sight of an empty state store, then
# again with it filled), 20 at a time, per [state] backend. The UIDL map is sized at W7_MAP_COUNTS.
W7_USERS=1000;  W7_COUNT=20; W7_SIZE=2048; W7_CONCURRENCY=20; W7_MAP_COUNTS="20 10000 100000"
if [[ $MODE == smoke ]]; then
  W1_COUNT=100; W1_SESSIONS=5; W3_SIZE=$((1024 * 1024)); W3T_SESSIONS=3
  W6_USERS=10; W6_COUNT=3; W6_CONCURRENCY=5
  W7_USERS=10; W7_COUNT=3; W7_CONCURRENCY=5; W7_MAP_COUNTS="100"
fi
PASSWORD="bench-Secret-1"
WORKERS=${POPBRIDGE_BENCH_WORKERS:-1}

# ---------------------------------------------------------------------------------------------
# Build (Release). GCC 12 reports a false -Wrestrict inside libstdc++ at -O3, hence the flag.
if ((DO_BUILD)); then
  if [[ ! -f $BUILD/CMakeCache.txt ]]; then
    log "configuring $BUILD (Release)"
    cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      "-DCMAKE_CXX_FLAGS=-Wno-error=restrict" >/dev/null
  fi
  log "building popbridge and pop3load in $BUILD"
  cmake --build "$BUILD" --target popbridge pop3load -j2 >/dev/null ||
    die "build failed: cmake --build $BUILD --target popbridge pop3load"
fi
POPBRIDGE="$BUILD/proxy/popbridge"
POP3LOAD="$BUILD/tests/bench/pop3load"
[[ -x $POPBRIDGE ]] || die "$POPBRIDGE missing (build it or drop --no-build)"
[[ -x $POP3LOAD ]] || die "$POP3LOAD missing (build it or drop --no-build)"
DOVECOT=$(command -v dovecot || true)
[[ -z $DOVECOT && -x /usr/sbin/dovecot ]] && DOVECOT=/usr/sbin/dovecot
[[ -n $DOVECOT ]] || die "dovecot not found: apt-get install dovecot-imapd dovecot-pop3d"
command -v openssl >/dev/null || die "openssl CLI not found"
if [[ $MODE != smoke ]]; then
  command -v python3 >/dev/null || die "python3 not found (tests/bench/report.py makes the tables)"
fi

if [[ $MODE != smoke ]] && ! command -v gnuplot >/dev/null; then
  log "installing gnuplot-nox for the chart"
  if [[ $(id -u) == 0 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q gnuplot-nox >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q gnuplot-nox >/dev/null 2>&1; } ||
      log "WARNING: could not install gnuplot-nox; the chart will be skipped"
  else
    sudo -n apt-get install -y -q gnuplot-nox >/dev/null 2>&1 ||
      log "WARNING: gnuplot missing and cannot install it without root; chart skipped"
  fi
fi

# ---------------------------------------------------------------------------------------------
# File descriptors: W4 needs about 2 per session in popbridge and 1 in pop3load, and Dovecot
# raises nothing itself. Try to raise the soft limit; shrink W4 if the hard one is too low.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT=$(ulimit -n)
W4_CONCURRENCY=$W4_USERS
W4_NOTE=""
if [[ $FD_LIMIT != unlimited ]] && ((FD_LIMIT < 2 * W4_USERS + 200)); then
  W4_CONCURRENCY=$(((FD_LIMIT - 200) / 2))
  ((W4_CONCURRENCY >= 10)) || die "ulimit -n is $FD_LIMIT: too low for W4"
  W4_NOTE="W4 ran $W4_CONCURRENCY concurrent sessions instead of $W4_USERS: ulimit -n is $FD_LIMIT."
  log "NOTE: $W4_NOTE"
fi

# ---------------------------------------------------------------------------------------------
# Work directory and cleanup of everything started here (by pid / process group only).
if [[ -n ${POPBRIDGE_BENCH_TMPDIR:-} ]]; then
  TMP_PARENT=$POPBRIDGE_BENCH_TMPDIR
elif [[ -w /dev/shm ]] && (($(df -Pk /dev/shm | awk 'NR==2{print $4}') > 2 * 1024 * 1024)); then
  TMP_PARENT=/dev/shm # ~300 MB of Maildir files; tmpfs keeps seeding and reading off the disk
else
  TMP_PARENT=/tmp
fi
WORK=$(mktemp -d "$TMP_PARENT/popbridge-bench-XXXXXX")
chmod 755 "$WORK"
DOVECOT_UP_PID=""
DOVECOT_B_PID=""
POPBRIDGE_PID=""
LOAD_PID=""
RELAY_A_PID=""
RELAY_B_PID=""
REDIS_PID=""

stop_group() { # pid: SIGTERM the process group it leads, then SIGKILL what is left
  local pid=$1 i
  [[ -n $pid ]] || return 0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
stop_popbridge() {
  [[ -n $POPBRIDGE_PID ]] || return 0
  stop_group "$POPBRIDGE_PID"
  POPBRIDGE_PID=""
}
cleanup() {
  local status=$?
  # A second signal must not cut the cleanup short.
  trap - EXIT
  trap '' INT TERM
  if [[ -n $LOAD_PID ]]; then
    kill -TERM "$LOAD_PID" 2>/dev/null || true
    wait "$LOAD_PID" 2>/dev/null || true
  fi
  stop_popbridge
  stop_group "$RELAY_A_PID"
  stop_group "$RELAY_B_PID"
  stop_group "$REDIS_PID"
  stop_group "$DOVECOT_B_PID"
  stop_group "$DOVECOT_UP_PID"
  # Keep the logs of a failed run; an interrupted one (130, 143) leaves nothing behind.
  if ((KEEP)) || { ((status != 0)) && ((status != 130 && status != 143)); }; then
    log "work directory kept for inspection: $WORK"
    if ((status != 0)) && ((KEEP == 0)); then
      # Logs only: the mail is large and rebuilt by every run.
      rm -rf "${WORK:?}/home" "${WORK:?}/bhome" 2>/dev/null || true
    fi
  else
    rm -rf "${WORK:?}"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_port() { # port what pid
  local port=$1 what=$2 pid=$3 i
  for i in $(seq 300); do
    kill -0 "$pid" 2>/dev/null || return 1
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  log "$what did not listen on port $port within 15 s"
  return 1
}

read -r IMAP_PORT IMAPS_PORT POP3_C_PORT POP3S_C_PORT POP3_B_PORT POP3S_B_PORT POP3_A_PORT \
  POP3S_A_PORT RELAY_A_PORT RELAY_B_PORT REDIS_PORT <<<"$("$POP3LOAD" ports 11)"

# ---------------------------------------------------------------------------------------------
# Test PKI: a CA and a server certificate for localhost / 127.0.0.1.
log "work directory $WORK"
mkdir -p "$WORK/pki"
(
  cd "$WORK/pki"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/CN=popbridge bench CA" -keyout ca.key -out ca.pem 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout server.key -out server.csr 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >ext.cnf
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
    -extfile ext.cnf -out server.pem 2>/dev/null
  chmod 644 ./*.pem ./*.key
) || die "cannot create the test certificates with openssl"
CA="$WORK/pki/ca.pem"

# ---------------------------------------------------------------------------------------------
# Users and mail. Dovecot will not deliver mail as root: root runs use nobody/nogroup.
if [[ $(id -u) == 0 ]]; then
  MAIL_USER=nobody; MAIL_GROUP=nogroup
else
  MAIL_USER=$(id -un); MAIL_GROUP=$(id -gn)
fi
MAIL_UID=$(id -u "$MAIL_USER"); MAIL_GID=$(getent group "$MAIL_GROUP" | cut -d: -f3)
mkdir -p "$WORK/home" "$WORK/bhome" "$WORK/up" "$WORK/b"
chown "$MAIL_UID:$MAIL_GID" "$WORK/home" "$WORK/bhome"

W4_USER_LIST=()
for ((i = 0; i < W4_USERS; i++)); do W4_USER_LIST+=("w4u$i"); done
W6_USER_LIST=()
for ((i = 0; i < W6_USERS; i++)); do W6_USER_LIST+=("w6u$i"); done
W7_USER_LIST=()
for ((i = 0; i < W7_USERS; i++)); do W7_USER_LIST+=("w7u$i"); done
{
  for u in w1 w1l w2 w3 "${W4_USER_LIST[@]}" "${W6_USER_LIST[@]}" "${W7_USER_LIST[@]}"; do
    echo "$u:{PLAIN}$PASSWORD::::::"
  done
} >"$WORK/users"
chmod 644 "$WORK/users"

seed() { # user count size [first-index]
  local dir="$WORK/home/$1"
  mkdir -p "$dir"
  chown "$MAIL_UID:$MAIL_GID" "$dir"
  "$POP3LOAD" seed --maildir "$dir/Maildir" --count "$2" --size "$3" --uid "$MAIL_UID" \
    --gid "$MAIL_GID" --first-index "${4:-1}"
}
# seed_many count size first-index user...: one pop3load process for many Maildirs.
seed_many() {
  local count=$1 size=$2 first=$3
  shift 3
  # One mkdir and one chown for all: a process per user would take longer than the seeding.
  (cd "$WORK/home" && mkdir -p "$@" && chown "$MAIL_UID:$MAIL_GID" "$@")
  local u
  for u in "$@"; do printf '%s/home/%s/Maildir\n' "$WORK" "$u"; done >"$WORK/maildirs.txt"
  "$POP3LOAD" seed --maildir-list "$WORK/maildirs.txt" --count "$count" --size "$size" \
    --uid "$MAIL_UID" --gid "$MAIL_GID" --first-index "$first"
}
log "seeding Maildirs"
wants() { [[ " $WORKLOADS " == *" $1 "* ]]; }
wants W1 && seed w1 "$W1_COUNT" "$W1_SIZE"
wants W1L && seed w1l "$W1L_COUNT" "$W1L_SIZE"
{ wants W2 || wants W5; } && seed w2 "$W2_COUNT" "$W2_SIZE"
{ wants W3 || wants W3T; } && seed w3 1 "$W3_SIZE"
if wants W4 || wants W4S; then seed_many "$W4_COUNT" "$W4_SIZE" 1 "${W4_USER_LIST[@]}"; fi
# W6's mailboxes grow by W6_NEW messages per W6 run; W6_NOW is their current count.
W6_NOW=$W6_COUNT
if wants W6; then seed_many "$W6_COUNT" "$W6_SIZE" 1 "${W6_USER_LIST[@]}"; fi
if wants W7; then seed_many "$W7_COUNT" "$W7_SIZE" 1 "${W7_USER_LIST[@]}"; fi

# ---------------------------------------------------------------------------------------------
# Dovecot configuration shared by both instances. Limits: W4 opens 500 POP3 sessions at once,
# and A and B each hold one upstream IMAP session per POP3 session.
common_conf() { # dir
  local d=$1
  cat <<EOF
instance_name = $(basename "$d")-$$
listen = 127.0.0.1
base_dir = $d/run
state_dir = $d/state
log_path = $d/dovecot.log
info_log_path = $d/dovecot.log
log_timestamp = "%Y-%m-%d %H:%M:%S "
auth_mechanisms = plain login
disable_plaintext_auth = no
auth_failure_delay = 0
ssl = yes
ssl_cert = <$WORK/pki/server.pem
ssl_key = <$WORK/pki/server.key
ssl_dh = </usr/share/dovecot/dh.pem
ssl_client_ca_file = $CA
mail_uid = $MAIL_USER
mail_gid = $MAIL_GROUP
first_valid_uid = 1
first_valid_gid = 1
mail_fsync = never
mail_max_userip_connections = 10000
default_process_limit = 2000
default_client_limit = 10000
default_vsz_limit = 1G
protocol imap {
  mail_max_userip_connections = 10000
}
protocol pop3 {
  mail_max_userip_connections = 10000
}
service auth {
  client_limit = 10000
}
service anvil {
  # The auth process cannot reach a mode-0 socket and then runs without the login penalty,
  # which would otherwise slow every login from 127.0.0.1 after a failure.
  unix_listener anvil-auth-penalty {
    mode = 0
  }
  client_limit = 10000
}
EOF
  if [[ $(id -u) != 0 ]]; then
    printf 'default_internal_user = %s\ndefault_internal_group = %s\ndefault_login_user = %s\n' \
      "$MAIL_USER" "$MAIL_GROUP" "$MAIL_USER"
  fi
}
login_service() { # service plain-name plain-port tls-name tls-port
  cat <<EOF
service $1 {
  inet_listener $2 {
    address = 127.0.0.1
    port = $3
  }
  inet_listener $4 {
    address = 127.0.0.1
    port = $5
    ssl = yes
  }
  # High-performance login mode: a few long-lived login processes serve all connections.
  service_count = 0
  process_min_avail = 2
  client_limit = 2000
}
EOF
  [[ $(id -u) != 0 ]] && printf 'service %s {\n  chroot =\n}\n' "$1"
  return 0
}

# The upstream (and C): IMAP for A and B, POP3 straight on the Maildirs for C.
{
  common_conf "$WORK/up"
  cat <<EOF
protocols = imap pop3
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $WORK/users
}
userdb {
  driver = passwd-file
  args = username_format=%u $WORK/users
  default_fields = home=$WORK/home/%u
}
service imap {
  process_limit = 2000
}
service pop3 {
  process_limit = 2000
}
EOF
  login_service imap-login imap "$IMAP_PORT" imaps "$IMAPS_PORT"
  login_service pop3-login pop3 "$POP3_C_PORT" pop3s "$POP3S_C_PORT"
} >"$WORK/up/dovecot.conf"

# B: Dovecot POP3 with the imapc backend. $1 = "plain", "tls" (upstream over imaps) or "relay"
# (plain, through W6's counting relay: its passdb logins and imapc sessions both count).
write_b_conf() {
  local passdb_args="host=127.0.0.1 port=$IMAP_PORT" imapc_port=$IMAP_PORT imapc_ssl=no
  if [[ $1 == tls ]]; then
    passdb_args="host=127.0.0.1 port=$IMAPS_PORT ssl=imaps ssl_ca_file=$CA"
    imapc_port=$IMAPS_PORT
    imapc_ssl=imaps
  elif [[ $1 == relay ]]; then
    passdb_args="host=127.0.0.1 port=$RELAY_B_PORT"
    imapc_port=$RELAY_B_PORT
  fi
  {
    common_conf "$WORK/b"
    cat <<EOF
protocols = pop3
mail_location = imapc:~/imapc
imapc_host = 127.0.0.1
imapc_port = $imapc_port
imapc_ssl = $imapc_ssl
imapc_ssl_verify = yes
imapc_features = rfc822.size fetch-headers modseq
pop3_no_flag_updates = yes
passdb {
  driver = imap
  args = $passdb_args
  default_fields = userdb_imapc_user=%u userdb_imapc_password=%w userdb_home=$WORK/bhome/%u
}
userdb {
  driver = prefetch
}
service pop3 {
  process_limit = 2000
}
EOF
    login_service pop3-login pop3 "$POP3_B_PORT" pop3s "$POP3S_B_PORT"
  } >"$WORK/b/dovecot.conf"
}

start_dovecot() { # dir what -> prints pid
  local dir=$1
  mkdir -p "$dir/run" "$dir/state"
  setsid "$DOVECOT" -F -c "$dir/dovecot.conf" </dev/null >>"$dir/dovecot.stderr" 2>&1 &
  echo $!
}

# popbridge: $1 = plain | tls (upstream over imaps) | relay (plain, through W6's counting
# relay), $2 = warm (popbridge's defaults: session pool, snapshot cache and RETR read-ahead on)
# | cold (all three off), $3 = workers. Writes popbridge-$1-$2-w$3.toml. Restarted before every
# A run, so that VmHWM is that run's peak and the CPU counters start from zero.
# $4 (W7 only) = the [state] backend: none, path or redis, with ".stable" for uidl_format =
# "%{stable}". W7 runs with popbridge's defaults for exclusive access (one lease per session).
popbridge_conf_path() { echo "$WORK/popbridge-$1-$2-w$3${4:+-$4}.toml"; }
write_popbridge_conf() {
  local upstream_port=$IMAP_PORT upstream_tls=none fast_paths="" state_conf="" uidl_conf=""
  local sessions_conf="max_sessions_per_account = 0" exclusive_conf="exclusive = false"
  if [[ $1 == tls ]]; then upstream_port=$IMAPS_PORT; upstream_tls=implicit; fi
  if [[ $1 == relay ]]; then upstream_port=$RELAY_A_PORT; fi
  # The keys exist from issue 14 on; an older popbridge rejects them (see check_cold_mode).
  if [[ $2 == cold ]]; then
    fast_paths=$'pool_idle = "0s"\nsnapshot_cache = false\nread_ahead = false'
  fi
  if [[ -n ${4:-} ]]; then
    sessions_conf="" exclusive_conf=""
    case $4 in
      path*) state_conf=$'[state]\npath = "'"$WORK/state.db"'"' ;;
      redis*) state_conf=$'[state]\nredis = "redis://127.0.0.1:'"$REDIS_PORT"'"' ;;
    esac
    [[ $4 == *.stable ]] && uidl_conf='uidl_format = "%{stable}"'
  fi
  cat >"$(popbridge_conf_path "$1" "$2" "$3" "${4:-}")" <<EOF
[server]
workers = $3
log_level = "warn"
max_connections = 10000
max_connections_per_ip = 0
auth_failure_delay = "0s"
# Workloads run many sessions of one user at once, as Dovecot's own POP3 (no session lock)
# allows: the bench measures the bridge, not its abuse control.
$sessions_conf

[[listener]]
address = "127.0.0.1:$POP3_A_PORT"
tls = "none"
allow_plaintext_auth = true

[[listener]]
address = "127.0.0.1:$POP3S_A_PORT"
tls = "implicit"
certificate = "$WORK/pki/server.pem"
private_key = "$WORK/pki/server.key"

[upstream]
host = "127.0.0.1"
port = $upstream_port
tls = "$upstream_tls"
ca_file = "$CA"
server_name = "localhost"
$fast_paths

[mailbox]
on_delete = "keep"
$exclusive_conf
$uidl_conf

$state_conf
EOF
}
start_popbridge() { # plain | tls | relay, warm | cold, workers [, W7 state]
  local conf
  conf=$(popbridge_conf_path "$1" "$2" "$3" "${4:-}")
  stop_popbridge
  [[ -f $conf ]] || write_popbridge_conf "$1" "$2" "$3" "${4:-}"
  setsid "$POPBRIDGE" --config "$conf" </dev/null >>"$WORK/popbridge.log" 2>&1 &
  POPBRIDGE_PID=$!
  wait_port "$POP3_A_PORT" popbridge "$POPBRIDGE_PID" ||
    die "popbridge did not start; log: $(tail -5 "$WORK/popbridge.log")"
}
popbridge_hwm_kb() { awk '/^VmHWM:/{print $2}' "/proc/$POPBRIDGE_PID/status"; }
popbridge_cpu_ticks() { # utime + stime (fields 14 and 15, counted after the ")" of the name)
  sed 's/^.*) //' "/proc/$POPBRIDGE_PID/stat" | awk '{print $12 + $13}'
}
# Bytes popbridge read from any descriptor: with one session at a time, the upstream's bytes
# plus the client's few dozen bytes of commands.
popbridge_rchar() { awk '/^rchar:/{print $2}' "/proc/$POPBRIDGE_PID/io"; }
CLK_TCK=$(getconf CLK_TCK)

log "starting the upstream Dovecot (IMAP $IMAP_PORT, IMAPS $IMAPS_PORT, C: POP3 $POP3_C_PORT)"
DOVECOT_UP_PID=$(start_dovecot "$WORK/up")
wait_port "$IMAP_PORT" "upstream Dovecot" "$DOVECOT_UP_PID" ||
  die "upstream Dovecot did not start: $(tail -5 "$WORK"/up/dovecot.{log,stderr} 2>/dev/null)"
wait_port "$POP3_C_PORT" "Dovecot POP3 (C)" "$DOVECOT_UP_PID" || die "Dovecot POP3 did not start"

B_CONF=""
start_b() { # plain | tls
  [[ $B_CONF == "$1" ]] && return 0
  stop_group "$DOVECOT_B_PID"
  # imapc's local cache belongs to one upstream; both variants see the same mail.
  write_b_conf "$1"
  DOVECOT_B_PID=$(start_dovecot "$WORK/b")
  wait_port "$POP3_B_PORT" "Dovecot imapc (B)" "$DOVECOT_B_PID" ||
    die "Dovecot imapc did not start: $(tail -5 "$WORK"/b/dovecot.{log,stderr} 2>/dev/null)"
  B_CONF=$1
}

# Endpoints: A (popbridge warm: its defaults), Acold (pool, snapshot cache and read-ahead off),
# B, C; W4S runs Aw1 and Aw2 (warm, workers = 1 and 2). W6 has no C: it counts upstream IMAP.
A_ENDPOINTS=""
for m in $MODES; do
  case $m in warm) A_ENDPOINTS+=" A" ;; cold) A_ENDPOINTS+=" Acold" ;; esac
done
A_ENDPOINTS=${A_ENDPOINTS# }
endpoints_for() { # workload
  case $1 in
    W6) echo "$A_ENDPOINTS B" ;;
    W4S) echo "Aw1 Aw2" ;;
    W7) echo "$W7_ENDPOINTS" ;;
    *) echo "$A_ENDPOINTS B C" ;;
  esac
}
endpoint_mode() { [[ $1 == Acold ]] && echo cold || echo warm; }
endpoint_workers() {
  case $1 in Aw1) echo 1 ;; Aw2) echo 2 ;; *) echo "$WORKERS" ;; esac
}
# Cold mode needs the keys of issue 14. A popbridge without them refuses the configuration: say
# so up front (or, for --smoke, leave cold mode out) instead of failing every Acold run.
check_cold_mode() {
  [[ " $MODES " == *" cold "* ]] || return 0
  write_popbridge_conf plain cold "$WORKERS"
  local conf out
  conf=$(popbridge_conf_path plain cold "$WORKERS")
  if out=$("$POPBRIDGE" --check-config "$conf" 2>&1); then return 0; fi
  if [[ $MODE == smoke && $MODES_GIVEN == 0 ]]; then
    log "NOTE: this popbridge does not accept the cold-mode keys; smoke test without cold mode"
    A_ENDPOINTS=A
    return 0
  fi
  die "popbridge rejects the cold-mode keys (pool_idle, snapshot_cache, read_ahead): $(
    echo "$out" | head -3) -- build a popbridge that has them, or run with --modes warm"
}
check_cold_mode

# ---------------------------------------------------------------------------------------------
# W7 (issue 15): what each [state] backend costs a poll. A redis-server of its own on loopback
# (no snapshots: the figures are the server's work for popbridge, not its persistence).
W7_ENDPOINTS=""
W7_NOTE=""
redis_cli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }
start_redis() {
  mkdir -p "$WORK/redis"
  setsid redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir "$WORK/redis" --logfile "$WORK/redis/redis.log" </dev/null >/dev/null 2>&1 &
  REDIS_PID=$!
  wait_port "$REDIS_PORT" redis-server "$REDIS_PID" || die "redis-server did not start"
}
# Endpoints A.none, A.path, A.redis and, each where popbridge's --check-config accepts
# uidl_format = "%{stable}" with that backend, A.<backend>.stable.
setup_w7() {
  local states="none path" state conf out
  if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
    start_redis
    states+=" redis"
  else
    W7_NOTE+="redis-server or redis-cli is not installed: no Redis rows. "
  fi
  local refused="" reason=""
  for state in $states $(printf '%s.stable ' $states); do
    write_popbridge_conf relay warm "$WORKERS" "$state"
    conf=$(popbridge_conf_path relay warm "$WORKERS" "$state")
    if out=$("$POPBRIDGE" --check-config "$conf" 2>&1); then
      W7_ENDPOINTS+=" A.$state"
    else
      refused+=" $state"
      reason=$(echo "$out" | grep -m1 -i 'error' | sed 's/^.*toml:[0-9:]* //' | tr -d '`|')
    fi
  done
  # The device's side over TLS (implicit, pop3s) once, without a state store: what a handshake
  # adds to a poll. Full handshakes: pop3load resumes no TLS session.
  W7_ENDPOINTS+=" A.none.tls"
  W7_ENDPOINTS=${W7_ENDPOINTS# }
  [[ -z $refused ]] || W7_NOTE+="refused by this popbridge's --check-config:$refused ($reason). "
  [[ -n $W7_NOTE ]] && log "NOTE: $W7_NOTE"
  return 0
}
# Redis' figures, prefixed r_: calls per command (r_cmd.*, commands run inside EVAL's scripts
# included), commands processed, memory used, and the server's CPU ticks.
redis_stats() {
  [[ -n $REDIS_PID ]] || return 0
  redis_cli INFO commandstats | tr -d '\r' |
    awk -F'[:,=]' '/^cmdstat_/ {sub("cmdstat_", "", $1); printf "r_cmd.%s=%s ", $1, $3}'
  redis_cli INFO all | tr -d '\r' | awk -F: '$1 == "total_commands_processed" {
    printf "r_commands=%s ", $2 } $1 == "used_memory" { printf "r_mem=%s ", $2 }
    $1 == "total_net_input_bytes" { printf "r_in_bytes=%s ", $2 }
    $1 == "total_net_output_bytes" { printf "r_out_bytes=%s ", $2 }
    $1 == "db0" { split($2, kv, /[=,]/); printf "r_keys=%s ", kv[2] }'
  sed 's/^.*) //' "/proc/$REDIS_PID/stat" | awk '{print "r_cpu_ticks=" $12 + $13}'
}
state_bytes() { # the SQLite store's file and its WAL
  local total=0 f
  for f in "$WORK"/state.db "$WORK"/state.db-wal; do
    [[ -f $f ]] && total=$((total + $(stat -c %s "$f")))
  done
  echo "$total"
}
# One W7 run of an endpoint: an empty state store (SQLite file removed, Redis flushed), a fresh
# popbridge through the counting relay, round 1 (every device polls once: first sight), round 2
# (every device polls again, nothing changed: the store has their entries). Raw lines "W7R1 ..."
# and "W7R2 ...": pop3load's figures, popbridge's CPU, the relay's and Redis' growth.
run_w7() { # endpoint rep measured
  local endpoint=$1 rep=$2 measured=$3 state=${1#A.} round before after
  stop_popbridge
  rm -f "$WORK"/state.db*
  if [[ -n $REDIS_PID ]]; then redis_cli FLUSHALL >/dev/null; fi
  start_popbridge relay warm "$WORKERS" "$state"
  for round in 1 2; do
    ((round == 2 && !measured)) && break
    relay_settle A
    before="$(relay_stats A) $(redis_stats)"
    run_one "W7R$round" "$endpoint" "$rep" 0 -- --user w7u --users "$W7_USERS" --workload poll \
      --sessions "$W7_USERS" --concurrency "$W7_CONCURRENCY" --expect-messages "$W7_COUNT"
    relay_settle A
    after="$(relay_stats A) $(redis_stats)"
    if ((measured)); then
      echo "W7R$round $endpoint $rep $LAST_RESULT $(stats_delta "$before" "$after")" \
        "st_bytes=$(state_bytes)" >>"$RAW"
      log "W7 round $round $endpoint rep $rep: $LAST_RESULT $(stats_delta "$before" "$after")"
    fi
  done
}
# commandstats counts the commands a Lua script runs as well as the EVAL: which ones popbridge
# sends itself (one round trip each) is read from MONITOR ("[0 lua]" marks a script's), on a
# separate, unmeasured pass of W7_MONITOR_POLLS devices per round for each Redis endpoint.
# Raw lines "W7MON<round> endpoint 0 ok=N top.<cmd>=calls lua.<cmd>=calls".
W7_MONITOR_POLLS=50
run_w7_monitor() { # endpoint
  local endpoint=$1 round mon pid n=$W7_MONITOR_POLLS
  ((n <= W7_USERS)) || n=$W7_USERS
  stop_popbridge
  rm -f "$WORK"/state.db*
  redis_cli FLUSHALL >/dev/null
  start_popbridge relay warm "$WORKERS" "${endpoint#A.}"
  for round in 1 2; do
    mon="$WORK/redis-monitor-$round.txt"
    # redis-cli itself, not the redis_cli function: $! must be the process that is killed.
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" MONITOR >"$mon" 2>/dev/null &
    pid=$!
    sleep 0.3
    "$POP3LOAD" run --port "$POP3_A_PORT" --password "$PASSWORD" --user w7u --users "$n" \
      --workload poll --sessions "$n" --concurrency "$W7_CONCURRENCY" \
      --expect-messages "$W7_COUNT" --label "W7MON$round" >/dev/null 2>&1 || FAILED_RUNS=$((FAILED_RUNS + 1))
    sleep 0.5
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    echo "W7MON$round $endpoint 0 ok=$n $(tr -d '\r' <"$mon" | awk '$2 ~ /^\[/ {
        where = ($3 == "lua]") ? "lua" : "top"; cmd = tolower($4); gsub(/"/, "", cmd)
        count[where "." cmd]++ }
      END { for (k in count) printf "%s=%d ", k, count[k] }')" >>"$RAW"
  done
  stop_popbridge
}
# The stable-UIDL map of one maildrop at each of W7_MAP_COUNTS entries: the SQLite file (closed,
# so checkpointed) and the Redis hash RedisStateStore writes (MEMORY USAGE, and DUMP's bytes).
measure_uidl_map() {
  local n line key extra
  for n in $W7_MAP_COUNTS; do
    line=$("$POP3LOAD" uidlmap --count "$n" --sqlite "$WORK/map.db" --resp "$WORK/map.resp") ||
      die "pop3load uidlmap failed"
    extra=""
    if [[ -n $REDIS_PID ]]; then
      key=$(sed 's/.* key=\([^ ]*\).*/\1/' <<<"$line")
      redis_cli DEL "$key" >/dev/null
      redis_cli --pipe <"$WORK/map.resp" >/dev/null || die "redis-cli --pipe failed"
      extra="redis_mem=$(redis_cli MEMORY USAGE "$key" SAMPLES 0)"
      extra+=" redis_dump=$(redis_cli --raw DUMP "$key" | head -c -1 | wc -c)"
      extra+=" redis_fields=$(redis_cli HLEN "$key") redis_encoding=$(redis_cli OBJECT ENCODING "$key")"
      redis_cli DEL "$key" >/dev/null
    fi
    echo "W7MAP map $n ${line#uidlmap } $extra" >>"$RAW"
    log "UIDL map, $n entries: ${line#uidlmap } $extra"
  done
  rm -f "$WORK"/map.*
}
wants W7 && setup_w7

# ---------------------------------------------------------------------------------------------
# Runs. Each line of $RAW: workload endpoint rep key=value... (pop3load's figures plus
# popbridge's peak RSS and CPU for A).
RAW="$WORK/raw.txt"
: >"$RAW"
FAILED_RUNS=0

# run_one workload endpoint rep measured(0|1) -- pop3load arguments
run_one() {
  local workload=$1 endpoint=$2 rep=$3 measured=$4
  shift 5
  local tls_args=() port conn base_kb=0 cpu0=0 rchar0=0 extra="" out status=0 io_args=()
  case $workload in W5) tls_args=(--tls --ca "$CA") ;; esac
  [[ $endpoint == *.tls ]] && tls_args=(--tls --ca "$CA")
  case $endpoint in
    A*)
      if [[ $workload == W5 || $endpoint == *.tls ]]; then conn=tls; port=$POP3S_A_PORT; else
        conn=plain; port=$POP3_A_PORT; fi
      # W6's rounds run against the popbridge that run_w6 started (through the relay).
      [[ $workload == W6R* || $workload == W7R* ]] ||
        start_popbridge "$conn" "$(endpoint_mode "$endpoint")" "$(endpoint_workers "$endpoint")"
      base_kb=$(awk '/^VmRSS:/{print $2}' "/proc/$POPBRIDGE_PID/status")
      cpu0=$(popbridge_cpu_ticks)
      rchar0=$(popbridge_rchar)
      # W3 and W3T run one session at a time: pop3load reads popbridge's rchar around each
      # TOP or RETR command.
      case $workload in W3 | W3T) io_args=(--io-pid "$POPBRIDGE_PID") ;; esac
      ;;
    B)
      if [[ $workload == W5 ]]; then start_b tls; port=$POP3S_B_PORT; else
        [[ $workload == W6R* ]] || start_b plain
        port=$POP3_B_PORT
      fi
      ;;
    C) if [[ $workload == W5 ]]; then port=$POP3S_C_PORT; else port=$POP3_C_PORT; fi ;;
  esac
  # In the background and waited for, so that SIGTERM/SIGINT reach the trap at once.
  "$POP3LOAD" run --port "$port" "${tls_args[@]}" "${io_args[@]}" --password "$PASSWORD" \
    --label "$workload-$endpoint-$rep" "$@" >"$WORK/pop3load.out" 2>"$WORK/pop3load.err" &
  LOAD_PID=$!
  wait "$LOAD_PID" || status=$?
  LOAD_PID=""
  out=$(cat "$WORK/pop3load.out")
  if [[ -s $WORK/pop3load.err ]]; then
    head -5 "$WORK/pop3load.err" | sed 's/^/    /' >&2
  fi
  if [[ $out != result* ]]; then
    log "pop3load gave no result for $workload $endpoint (exit $status)"
    out="result failed=1 harness_error=1"
  fi
  if [[ $endpoint == A* ]]; then
    local cpu1 hwm rchar1
    if kill -0 "$POPBRIDGE_PID" 2>/dev/null; then
      hwm=$(popbridge_hwm_kb)
      cpu1=$(popbridge_cpu_ticks)
      rchar1=$(popbridge_rchar)
      extra="pb_base_kb=$base_kb pb_hwm_kb=$hwm pb_cpu_s=$(awk -v a="$cpu0" -v b="$cpu1" \
        -v t="$CLK_TCK" 'BEGIN{printf "%.3f", (b - a) / t}') pb_rchar=$((rchar1 - rchar0))"
    else
      extra="pb_died=1"
      log "popbridge died during $workload: $(tail -5 "$WORK/popbridge.log")"
    fi
  fi
  ((status == 0)) || FAILED_RUNS=$((FAILED_RUNS + 1))
  LAST_RESULT="${out#result } $extra"
  if ((measured)); then
    echo "$workload $endpoint $rep $LAST_RESULT" >>"$RAW"
    log "$workload $endpoint rep $rep: $LAST_RESULT"
  fi
  return 0
}

# ---------------------------------------------------------------------------------------------
# W6: the counting relays between each proxy and the IMAP server (plain IMAP). A's popbridge and
# B's Dovecot reach the upstream only through them, so both are counted the same way.
start_relays() {
  local which port pid
  for which in A B; do
    if [[ $which == A ]]; then port=$RELAY_A_PORT; else port=$RELAY_B_PORT; fi
    setsid "$POP3LOAD" relay --listen-port "$port" --target-port "$IMAP_PORT" \
      --stats "$WORK/relay-$which.stats" </dev/null >>"$WORK/relay-$which.log" 2>&1 &
    pid=$!
    wait_port "$port" "relay $which" "$pid" || die "relay $which did not start"
    if [[ $which == A ]]; then RELAY_A_PID=$pid; else RELAY_B_PID=$pid; fi
  done
}
# The figures of a relay's stats file, prefixed "up_" (e.g. up_commands=12 up_cmd.LOGIN=1).
relay_stats() { sed 's/\([^ ]*\)=/up_\1=/g' "$WORK/relay-$1.stats"; }
# The difference of two relay_stats lines, key by key (a key missing before counts from 0).
stats_delta() {
  awk -v before="$1" -v after="$2" 'BEGIN {
    n = split(before, b, " "); for (i = 1; i <= n; i++) { split(b[i], kv, "="); old[kv[1]] = kv[2] }
    n = split(after, a, " "); out = ""
    for (i = 1; i <= n; i++) {
      split(a[i], kv, "="); d = kv[2] - old[kv[1]]
      if (d != 0 || kv[1] !~ /^(up|r)_cmd\./) out = out (out == "" ? "" : " ") kv[1] "=" d
    }
    print out }'
}
# Waits until a relay's figures stop moving: the proxies end their upstream sessions (LOGOUT)
# after the client's QUIT was answered.
relay_settle() {
  local previous="" now i
  for i in $(seq 50); do
    sleep 0.2
    now=$(cat "$WORK/relay-$1.stats")
    [[ $now == "$previous" ]] && return 0
    previous=$now
  done
}
w6_poll_args() { # expected messages
  echo "--user w6u --users $W6_USERS --workload poll --sessions $W6_USERS" \
    "--concurrency $W6_CONCURRENCY --expect-messages $1"
}
# Delivers W6_NEW messages into every W6 mailbox, as files in cur/ (the way the seed wrote them).
w6_deliver() {
  seed_many "$W6_NEW" "$W6_SIZE" $((W6_NOW + 1)) "${W6_USER_LIST[@]}"
  W6_NOW=$((W6_NOW + W6_NEW))
}
# One W6 run of an endpoint: round 1, delivery, round 2, all against one popbridge process (or
# one B), so that what popbridge kept from round 1 (pool, snapshot cache) serves round 2.
# Raw lines "W6R1 ..." and "W6R2 ...": pop3load's figures and the relay's growth over the round.
run_w6() { # endpoint rep measured
  local endpoint=$1 rep=$2 measured=$3 which=B round before after args
  if [[ $endpoint == A* ]]; then
    which=A
    start_popbridge relay "$(endpoint_mode "$endpoint")" "$(endpoint_workers "$endpoint")"
  else
    start_b relay
  fi
  for round in 1 2; do
    if ((round == 2)); then
      ((measured)) || break
      w6_deliver
    fi
    relay_settle "$which"
    before=$(relay_stats "$which")
    # shellcheck disable=SC2046
    run_one W6R$round "$endpoint" "$rep" 0 -- $(w6_poll_args "$W6_NOW")
    relay_settle "$which"
    after=$(relay_stats "$which")
    if ((measured)); then
      echo "W6R$round $endpoint $rep $LAST_RESULT $(stats_delta "$before" "$after")" >>"$RAW"
      log "W6 round $round $endpoint rep $rep: $LAST_RESULT $(stats_delta "$before" "$after")"
    fi
  done
}

workload_args() { # workload -> pop3load arguments for one measured run
  case $1 in
    W1) echo "--user w1 --workload poll --sessions $W1_SESSIONS --expect-messages $W1_COUNT" ;;
    W2 | W5) echo "--user w2 --workload retr --sessions $W2_SESSIONS --expect-messages $W2_COUNT" ;;
    W3) echo "--user w3 --workload retr --sessions $W3_SESSIONS --expect-messages 1" ;;
    W3T) echo "--user w3 --workload top --top-lines $W3T_LINES --sessions $W3T_SESSIONS" ;;
    W1L) echo "--user w1l --workload poll --sessions $W1L_SESSIONS --expect-messages $W1L_COUNT" ;;
    W4 | W4S) echo "--user w4u --users $W4_CONCURRENCY --workload retr --sessions $W4_CONCURRENCY" \
      "--concurrency $W4_CONCURRENCY --expect-messages $W4_COUNT" ;;
  esac
}
warmup_args() { # one pass that builds Dovecot's indexes (upstream and imapc caches), unmeasured
  case $1 in
    W1) echo "--user w1 --workload poll --sessions 1" ;;
    W2 | W5) echo "--user w2 --workload retr --sessions 1 --retr-max 1" ;;
    W3) echo "--user w3 --workload poll --sessions 1" ;;
    W3T) echo "--user w3 --workload top --top-lines $W3T_LINES --sessions 1" ;;
    W1L) echo "--user w1l --workload poll --sessions 1" ;;
    W4 | W4S) echo "--user w4u --users $W4_CONCURRENCY --workload retr --retr-max 1" \
      "--sessions $W4_CONCURRENCY --concurrency 50" ;;
  esac
}

START_TIME=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
SECONDS=0
{ wants W6 || wants W7; } && start_relays
for workload in $WORKLOADS; do
  log "== $workload: warm-up"
  for endpoint in $(endpoints_for "$workload"); do
    if [[ $workload == W6 ]]; then
      # Round 1 only: Dovecot's indexes and imapc's cache exist, popbridge restarts empty.
      run_w6 "$endpoint" 0 0
      continue
    fi
    if [[ $workload == W7 ]]; then
      # Dovecot's indexes are the same for every backend: one round 1 builds them.
      run_w7 "$endpoint" 0 0
      break
    fi
    # shellcheck disable=SC2046 # word splitting of the argument list is intended
    run_one "$workload" "$endpoint" 0 0 -- $(warmup_args "$workload")
  done
  for ((rep = 1; rep <= REPS; rep++)); do
    for endpoint in $(endpoints_for "$workload"); do
      if [[ $workload == W6 ]]; then
        run_w6 "$endpoint" "$rep" 1
        continue
      fi
      if [[ $workload == W7 ]]; then
        run_w7 "$endpoint" "$rep" 1
        continue
      fi
      # shellcheck disable=SC2046
      run_one "$workload" "$endpoint" "$rep" 1 -- $(workload_args "$workload")
    done
  done
  if [[ $workload == W7 ]]; then
    for endpoint in $W7_ENDPOINTS; do
      if [[ $endpoint == A.redis* ]]; then run_w7_monitor "$endpoint"; fi
    done
    measure_uidl_map
  fi
done
stop_popbridge
ELAPSED=$SECONDS
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------------------
# Report.
if [[ $MODE == smoke ]]; then
  # No python3 here: CI images may lack it. Any failed session or size mismatch fails the test.
  cat "$RAW"
  if ((FAILED_RUNS > 0)) || awk '{for (i = 4; i <= NF; i++) {split($i, kv, "=");
      if ((kv[1] == "failed" || kv[1] == "size_mismatch" || kv[1] == "harness_error" ||
           kv[1] == "pb_died") && kv[2] + 0 > 0) bad = 1}} END {exit !bad}' "$RAW"; then
    log "smoke test FAILED: a session failed, a RETR size did not match LIST or a TOP reply" \
      "had other than the lines asked for"
    exit 1
  fi
  log "smoke test passed (timings are not checked)"
  exit 0
fi

CPU_MODEL=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
[[ -n $CPU_MODEL ]] || CPU_MODEL=unknown
DATA="$WORK/ratios.dat"
python3 "$BENCH_DIR/report.py" --raw "$RAW" --markdown "$OUT" --chart-data "$DATA" \
  --date "$START_TIME" --nproc "$(nproc)" --cpu "$CPU_MODEL" --command "$COMMAND_LINE" \
  --reps "$REPS" --workers "$WORKERS" --elapsed "$ELAPSED" --note "$W4_NOTE" \
  --w4-sessions "$W4_CONCURRENCY" --top-lines "$W3T_LINES" --dovecot "$("$DOVECOT" --version)" \
  --modes "$MODES" --w1l-messages "$W1L_COUNT" --w6-devices "$W6_USERS" --w6-new "$W6_NEW" \
  --w7-devices "$W7_USERS" --w7-note "$W7_NOTE" --clk-tck "$CLK_TCK" \
  --load "$LOAD_START, then $LOAD_END" \
  --revision "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
if ! grep -qv '^#' "$DATA"; then
  log "no workload for the chart in this run: chart not drawn"
elif command -v gnuplot >/dev/null; then
  CHART="$(dirname "$OUT")/ratios.svg"
  gnuplot -e "datafile='$DATA'; outfile='$CHART'" "$BENCH_DIR/ratios.gp" &&
    log "chart written to $CHART"
else
  log "gnuplot not available: chart not drawn"
fi
log "results written to ${OUT#"$ROOT/"} ($ELAPSED s)"
((FAILED_RUNS == 0)) || { log "$FAILED_RUNS pop3load runs had failed sessions"; exit 1; }
