#!/usr/bin/env bash
# Memory per open call: callgate's resident memory before and while CALLS answered calls are
# held open (sipp `uac_hold.xml -d`, sipp's UAS), divided by CALLS. Everything a call keeps is
# in it: the SIP core's call entry, the open call record, map overhead, allocator slack.
#
#   benches/open_calls.sh [CALLS]      default 5000 (held 60 s, placed at 500/s)
#
# Loopback only; the sipp runs are bounded by -m and timeouts. Needs sipp (sip-tester).
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS=${1:-5000}
. benches/lib.sh
need sipp sip-tester
release_bin
UAS=28080; CG=28060; ADMIN=28081
uas_work $UAS
behind_uas $UAS $CG $ADMIN
rss() { awk '/VmRSS/ {print $2}' /proc/$PID/status; }
open_calls() { curl -s "http://127.0.0.1:$ADMIN/metrics" | awk '/^callgate_calls_open / {print $2}'; }
# Warm up the allocator and the maps' first growth with a few short calls.
timeout 120 sipp -sf tests/sipp/uac_allow.xml -inf "$WORK/numbers.csv" "127.0.0.1:$CG" -i 127.0.0.1 \
  -p 28900 -m 200 -r 200 -timeout 60s -recv_timeout 10000 -nostdin > /dev/null 2>&1 || true
BEFORE=$(rss)
timeout 300 sipp -sf tests/sipp/uac_hold.xml -inf "$WORK/numbers.csv" "127.0.0.1:$CG" -i 127.0.0.1 \
  -p 28901 -m "$CALLS" -r 500 -l "$CALLS" -d 60000 -timeout 200s -recv_timeout 60000 -nostdin \
  > /dev/null 2>&1 &
SIPP=$!
for _ in $(seq 1 240); do
  [ "$(open_calls)" -ge "$CALLS" ] 2>/dev/null && break
  sleep 0.25
done
OPEN=$(open_calls); DURING=$(rss)
echo "open calls: $OPEN; RSS before: $BEFORE KiB, with them open: $DURING KiB: $(( (DURING - BEFORE) * 1024 / (OPEN > 0 ? OPEN : 1) )) bytes per open call"
wait $SIPP || true
