#!/usr/bin/env bash
# The records index against a scan, side by side in one run: one number's history (`records
# find`) from the index and by --scan, and the reindex time and index size, over COUNT call
# records (default 1,000,000) in one day's file. The lines are a real call record's shape
# with the number, time and campaign varied (not yet written through the real writer: the
# 10 M-record measure of issue 26 will be).
#   bash benches/records_index.sh            # COUNT=... for another size
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
release_bin
COUNT=${COUNT:-1000000}
scratch
mkdir -p "$WORK/audit"
python3 - "$WORK/audit/audit-2026-11-02.jsonl" "$COUNT" <<'PY'
import sys
n = int(sys.argv[2])
with open(sys.argv[1], "w") as f:
    for i in range(n):
        number = f"+1415{2000000 + (i * 7919) % 7999999:07d}"
        ms = i % 86400000
        at = f"2026-11-02T{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}Z"
        f.write('{"ts":"%s","call":{"id":"c-%d","decision":"d-%d","call_id":"%d@dialer","called":"%s","campaign":"camp%d","invite_at":"%s","answered_at":null,"ended_at":"%s","setup_ms":120,"duration_ms":0,"disposition":"no_answer","ended_by":"carrier","sip_status":480},"prev":"%064d"}\n' % (at, i, i, i, number, i % 20, at, at, i))
PY
# The number looked up: called 5 times, spread over the day.
python3 - "$WORK/audit/audit-2026-11-02.jsonl" <<'PY'
import sys
lines = open(sys.argv[1]).read().split("\n")
step = max(1, len(lines) // 5)
for k in range(5):
    lines[k * step] = lines[k * step].replace(lines[k * step].split('"called":"')[1].split('"')[0], "+14155550100")
open(sys.argv[1], "w").write("\n".join(lines))
PY
size=$(stat -c %s "$WORK/audit/audit-2026-11-02.jsonl")
t0=$(date +%s.%N); "$BIN" records reindex "$WORK/audit" > /dev/null; t1=$(date +%s.%N)
timed() { local a b; a=$(date +%s.%N); "$@" > "$WORK/out" 2>/dev/null; b=$(date +%s.%N); echo "($b - $a) * 1000" | bc; }
indexed=$(timed "$BIN" records find "$WORK/audit" --number 4155550100)
found=$(wc -l < "$WORK/out")
scanned=$(timed "$BIN" records find "$WORK/audit" --number 4155550100 --scan)
[ "$(wc -l < "$WORK/out")" = "$found" ] || { echo "index and scan differ" >&2; exit 1; }
printf 'records: %s in one day (%s bytes)\n' "$COUNT" "$size"
printf 'reindex: %.1f s; index %s bytes (%.0f bytes per record)\n' "$(echo "$t1 - $t0" | bc)" \
  "$(stat -c %s "$WORK/audit/records-index.sqlite")" "$(echo "$(stat -c %s "$WORK/audit/records-index.sqlite") / $COUNT" | bc -l)"
printf 'one number (%s calls): index %.0f ms, scan %.0f ms (%.0fx)\n' "$found" "$indexed" "$scanned" "$(echo "$scanned / $indexed" | bc -l)"
