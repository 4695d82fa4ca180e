#!/usr/bin/env bash
# What the [state] backends cost a poll (issue 15): run.sh's workload W7 (the W6 poll with
# [state] none, path = SQLite and redis, and with uidl_format = "%{stable}" where popbridge takes
# it) plus the size of the stable-UIDL map; then puts the section "## State backends (issue 15)"
# into tests/bench/RESULTS.md, replacing the one there, and leaves the rest of RESULTS.md alone.
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
