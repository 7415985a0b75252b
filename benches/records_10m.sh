#!/usr/bin/env bash
# The records index at scale, on records written by callgate's own proxy, gate and audit
# writer (`callgate records generate`: in process, the clock moved along, COUNT calls over
# DAYS days, sealed days compressed in the background as in service): the index built from the log (`records
# reindex`), its size per record, one number's history from the index and by a scan, a
# month of one campaign exported, a one-month dossier, and the console's pages over HTTP (a
# number, calls searched, the overview, a month's report).
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

# The console's pages over the same records: callgate run on this log (its index built
# above), each page asked three times over HTTP on loopback (curl's whole request), the median.
read -r SIP_PORT ADMIN_PORT < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
mkdir -p "$WORK/var"
cat > "$WORK/callgate.toml" <<TOML
[sip]
listen = "127.0.0.1:$SIP_PORT"
[upstream]
address = "127.0.0.1:9"
[lists]
data_dir = "$PWD/config/sample-data"
optout_journal = "$WORK/var/optouts.jsonl"
consent_journal = "$WORK/var/consent.jsonl"
caps_journal = "$WORK/var/caps.bin"
emergency_file = "$WORK/var/emergency.json"
[audit]
dir = "$A"
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
[log]
level = "warn"
TOML
"$BIN" run --config "$WORK/callgate.toml" 2> "$WORK/callgate.log" &
CG_PID=$!
trap 'kill $CG_PID 2>/dev/null; wait $CG_PID 2>/dev/null; rm -rf "$WORK"' EXIT
base="http://127.0.0.1:$ADMIN_PORT"
for _ in $(seq 1 600); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/v1/records?limit=1")" = 200 ] && break
  sleep 0.1
done
page() {
  for _ in 1 2 3; do curl -s -o /dev/null -w '%{time_total}\n' "$base$1"; done | sort -n | sed -n 2p
}
ms() { printf '%.0f ms' "$(echo "$1 * 1000" | bc)"; }
echo "console pages (median of 3):"
echo "  a number's page (its five-year history, a call now, consent): $(ms "$(page "/console/number?n=$number")")"
echo "  its printable dossier of a month (the chain walked): $(ms "$(page "/console/number/dossier?n=$number&from=$month_from&to=$month_to")")"
echo "  calls of a month of one campaign, first page of 100: $(ms "$(page "/console/calls?from=$month_from&to=$month_to&campaign=default")")"
echo "  calls of a month blocked for the national list, first page: $(ms "$(page "/console/calls?from=$month_from&to=$month_to&reason=national_dnc")")"
echo "  the overview (today's and the last 24 hours' counts): $(ms "$(page "/console")")"
echo "  the report of a month: $(ms "$(page "/console/reports/view?from=$month_from&to=$month_to")")"
