#!/usr/bin/env bash
# What the [state] backends cost a poll (issue 15): run.sh's workload W7 (the W6 poll with
# [state] none, path = SQLite and redis, and with uidl_format = "%{stable}" where popbridge takes
# it) plus the size of the stable-UIDL map; then puts the section "## State backends (issue 15)"
# into tests/bench/RESULTS.md, replacing the one there, and leaves the rest of RESULTS.md alone.
# The section ends with redis_capacity.sh's figures (Redis' CPU per command under load), run
# after W7 when redis-benchmark is installed.
#
#   bash tests/bench/state_cost.sh              3 repetitions (about 10 minutes on 2 cores)
#   bash tests/bench/state_cost.sh --reps 1     any run.sh option but --workloads/--out
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RESULTS="$ROOT/tests/bench/RESULTS.md"
OUT=$(mktemp /tmp/popbridge-state-cost-XXXXXX.md)
trap 'rm -f "$OUT"' EXIT
bash "$ROOT/tests/bench/run.sh" --workloads W7 --modes warm --out "$OUT" "$@"
SECTION="## State backends (issue 15)"
grep -qF "$SECTION" "$OUT" || { echo "state_cost.sh: no W7 section in the report" >&2; exit 1; }
# The section runs to the next "## " heading or the end; the command line in it is run.sh's,
# so say which script ran it.
awk -v s="$SECTION" '$0 == s {on = 1; print; next} on && /^## / {exit} on' "$OUT" |
  sed 's|bash tests/bench/run.sh --workloads W7 --modes warm --out [^ `]*|bash tests/bench/state_cost.sh|' \
    >"$OUT.section"
if command -v redis-benchmark >/dev/null && command -v redis-server >/dev/null; then
  {
    printf '\n**Redis under load** (`bash tests/bench/redis_capacity.sh 100000`, run right after, %s):' \
      "$(date -u '+%H:%M UTC')"
    printf ' the Redis commands of one poll, driven by redis-benchmark with 50 connections on\n'
    printf 'random maildrops: the server CPU per call with many commands per wake-up (W7 runs at\n'
    printf 'about 100 polls/s, where each command costs Redis a wake-up of its own).\n\n```\n'
    bash "$ROOT/tests/bench/redis_capacity.sh" 100000
    printf '```\n'
  } >>"$OUT.section"
fi
python3 - "$RESULTS" "$OUT.section" "$SECTION" <<'PY'
import sys
results, section, title = sys.argv[1], open(sys.argv[2]).read().strip("\n"), sys.argv[3]
lines = open(results).read().split("\n")
if title in lines:
    start = lines.index(title)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    del lines[start:end]
else:
    # Before the history, which stays last.
    start = lines.index("## History") if "## History" in lines else len(lines)
new = section.split("\n") + [""]
lines[start:start] = new
open(results, "w").write("\n".join(lines))
PY
rm -f "$OUT.section"
echo "state_cost.sh: section written into ${RESULTS#"$ROOT/"}"
