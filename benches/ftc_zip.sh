#!/usr/bin/env bash
# The FTC download as it arrives (a zip of per-area-code files) against the same numbers as
# one plain file: `callgate lists compile` time for each, side by side in one run, and the
# two snapshots' entry counts (equal, or the script fails).
#   bash benches/ftc_zip.sh            # 10 M numbers; COUNT=... for another size
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
release_bin
COUNT=${COUNT:-10000000}
scratch

"$BIN" lists generate --count "$COUNT" --seed 7 --comma --out "$WORK/national.txt" > /dev/null
# One member per area code, deflated, as the FTC packs its download.
python3 - "$WORK/national.txt" "$WORK/download.zip" <<'PY'
import sys, zipfile, collections
by_npa = collections.defaultdict(list)
with open(sys.argv[1]) as f:
    for line in f:
        by_npa[line[:3]].append(line)
with zipfile.ZipFile(sys.argv[2], "w", zipfile.ZIP_DEFLATED) as z:
    for npa in sorted(by_npa):
        z.writestr(f"{npa}.txt", "".join(by_npa[npa]))
PY

compile() { # SOURCE OUT: seconds, then the entry count
  local t0 t1
  t0=$(date +%s.%N)
  "$BIN" lists compile --id national --kind national --full "$1" --out "$2" > "$2.report"
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}
plain=$(compile "$WORK/national.txt" "$WORK/plain.cgsnap")
zipped=$(compile "$WORK/download.zip" "$WORK/zip.cgsnap")
entries() { grep -o '[0-9]* entries' "$1.report" | head -1; }
[ "$(entries "$WORK/plain.cgsnap")" = "$(entries "$WORK/zip.cgsnap")" ] || { echo "entry counts differ" >&2; exit 1; }
printf 'numbers: %s (%s)\n' "$COUNT" "$(entries "$WORK/plain.cgsnap")"
printf 'plain file: %s bytes, compiled in %.2f s\n' "$(stat -c %s "$WORK/national.txt")" "$plain"
printf 'zip (%s members): %s bytes, compiled in %.2f s (%.2fx the plain file)\n' \
  "$(python3 -c "import zipfile,sys; print(len(zipfile.ZipFile(sys.argv[1]).namelist()))" "$WORK/download.zip")" \
  "$(stat -c %s "$WORK/download.zip")" "$zipped" "$(echo "$zipped / $plain" | bc -l)"
