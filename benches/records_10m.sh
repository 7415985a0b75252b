#!/usr/bin/env bash
# The records index at scale, on records written by callgate's own proxy, gate and audit
# writer (`callgate records generate`: in process, the clock moved along, COUNT calls over
# DAYS days, sealed days compressed in the background as in service): the index built from the log (`records
# reindex`), its size per record, one number's history from the index and by a scan, a
# month of one campaign exported, and a one-month dossier.
#   bash benches/records_10m.sh            # COUNT=10000000 DAYS=1826 (five years)
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
release_bin
COUNT=${COUNT:-10000000}
DAYS=${DAYS:-1826}
scratch
A="$WORK/audit"
secs() { local a b; a=$(date +%s.%N); "$@" > "$WORK/out" 2> "$WORK/err"; b=$(date +%s.%N); echo "$b - $a" | bc; }
first=$(date -u -d "-$((DAYS + 1)) days" +%Y-%m-%d)
gen=$(secs "$BIN" records generate "$A" --calls "$COUNT" --days "$DAYS" --first-day "$first" \
  --numbers 1000000 --config config/callgate.toml)
lines=$(( 2 * COUNT ))
bytes=$(du -sb "$A" | cut -f1)
printf 'generated: %s calls (%s lines) over %s days in %.0f s; log %s bytes on disk\n' \
  "$COUNT" "$lines" "$DAYS" "$gen" "$bytes"
reindex=$(secs "$BIN" records reindex "$A")
size=$(stat -c %s "$A/records-index.sqlite")
printf 'reindex: %.0f s; index %s bytes (%.0f bytes per line)\n' "$reindex" "$size" \
  "$(echo "$size / $lines" | bc -l)"
# A number called COUNT / 1,000,000 times on average, spread over the whole period.
number=4152007919
indexed=$(secs "$BIN" records find "$A" --number "$number")
found=$(wc -l < "$WORK/out")
scanned=$(secs "$BIN" records find "$A" --number "$number" --scan)
[ "$(wc -l < "$WORK/out")" = "$found" ] || { echo "index and scan differ" >&2; exit 1; }
printf 'one number (%s calls over %s days): index %.0f ms, scan %.1f s\n' "$found" "$DAYS" \
  "$(echo "$indexed * 1000" | bc)" "$scanned"
mid=$(( DAYS / 2 ))
month_from=$(date -u -d "$first + $mid days" +%Y-%m-%d)
month_to=$(date -u -d "$first + $(( mid + 30 )) days" +%Y-%m-%d)
export_s=$(secs "$BIN" records export "$A" --campaign default --from "$month_from" --to "$month_to")
printf 'a month of one campaign (%s calls): export %.2f s\n' "$(( $(wc -l < "$WORK/out") - 1 ))" "$export_s"
dossier=$(secs "$BIN" records dossier "$A" --number "$number" --from "$month_from" --to "$month_to" \
  --out "$WORK/dossier.html")
printf 'a one-month dossier (its 31 day files walked): %.2f s\n' "$dossier"
