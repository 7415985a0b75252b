#!/usr/bin/env bash
# How right a call record's duration is under load: CALLS calls at RATE calls/s, each held for
# HOLD ms by sipp (uac_hold.xml -d) between sipp's UAS and callgate; every record's
# duration_ms is set against HOLD and the error's p50, p99 and max printed. (sipp's own timer
# jitter is part of what is measured: the error is an upper bound of callgate's.)
#
#   benches/duration_error.sh [CALLS] [RATE] [HOLD_MS]     default 10,000 at 1,000/s, 1,000 ms
#
# Loopback only; the sipp runs are bounded by -m and timeouts. Needs sipp (sip-tester).
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS=${1:-10000}
RATE=${2:-1000}
HOLD=${3:-1000}
. benches/lib.sh
need sipp sip-tester
release_bin
UAS=27080; CG=27060; ADMIN=27081
uas_work $UAS
behind_uas $UAS $CG $ADMIN
timeout 300 sipp -sf tests/sipp/uac_hold.xml -inf "$WORK/numbers.csv" 127.0.0.1:$CG -i 127.0.0.1 \
  -p 27061 -m "$CALLS" -r "$RATE" -d "$HOLD" -timeout 240s -nostdin > /dev/null 2>&1 || true
kill -TERM $PID; wait $PID || true
python3 - "$WORK/var/audit" "$HOLD" <<'PY'
import json, os, sys
d, hold = sys.argv[1], int(sys.argv[2])
errs = []
for name in sorted(os.listdir(d)):
    if not name.endswith(".jsonl"):
        continue
    for line in open(os.path.join(d, name)):
        c = json.loads(line).get("call")
        if c and c.get("disposition") == "answered" and c.get("duration_ms") is not None:
            errs.append(abs(c["duration_ms"] - hold))
errs.sort()
if not errs:
    sys.exit("no answered call records")
q = lambda p: errs[min(len(errs) - 1, int(p * len(errs)))]
print(f"{len(errs)} answered calls held {hold} ms: duration error p50 {q(0.5)} ms, p99 {q(0.99)} ms, max {errs[-1]} ms")
PY
