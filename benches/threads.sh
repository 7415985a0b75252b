#!/usr/bin/env bash
# Where callgate's CPU per call goes, by thread: CPU (schedstat) and context switches per call
# of each thread (grouped by name) while sipp places CALLS calls at RATE calls/s through it.
# Set two builds side by side with BIN=path (run it twice, alternated: the machine is noisy).
#
#   benches/threads.sh [CALLS] [RATE]    defaults: 10000 calls at 1000 calls/s
#   PERF=/tmp/perf.data benches/threads.sh   ...and a perf profile of the run
#   NULL=1 benches/threads.sh    the same for the null relay (benches/null_relay.rs), the floor
#
# Loopback only; sipp is bounded by -m and a timeout. Needs sipp (sip-tester).
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
need sipp sip-tester
release_bin
CALLS=${1:-10000} RATE=${2:-1000}
UAS=25180 CG=25170 ADMIN=25171
uas_work $UAS
numbers_csv "$WORK/numbers.csv"
cp tests/sipp/uac_allow.xml "$WORK/uac.xml"
timeout 600 sipp -sn uas -i 127.0.0.1 -p $UAS -buff_size 4194304 -nostdin -bg > /dev/null 2>&1 || true
if [ -n "${NULL:-}" ]; then
  BIN=$(null_relay_bin)
  NULL_RELAY_LISTEN="127.0.0.1:$CG" NULL_RELAY_UPSTREAM="127.0.0.1:$UAS" "$BIN" &
  PID=$!
  for _ in $(seq 1 100); do ss -uln | grep -q ":$CG " && break; sleep 0.1; done
  ss -uln | grep -q ":$CG " || { echo "the null relay is not listening on $CG" >&2; exit 1; }
else
  callgate_toml "$WORK/callgate.toml" "$WORK" $CG $UAS $ADMIN
  CALLGATE_FAKE_NOW="$(date -u +%Y-%m-%dT19:00:00Z)" "$BIN" run --config "$WORK/callgate.toml" 2> "$WORK/log" &
  PID=$!
  wait_ready $ADMIN
fi

# One line per thread: name, CPU ns, context switches (voluntary and not).
snap() {
  for t in /proc/$PID/task/*; do
    echo "$(tr ' ' _ < "$t/comm") $(cut -d' ' -f1 "$t/schedstat") $(awk '/^(non)?voluntary_ctxt/ {s += $2} END {print s}' "$t/status")"
  done
}
snap > "$WORK/before"
# PERF=file: also sample callgate's threads (perf record) while the calls run; read with
# `perf report -i file --sort comm,dso,sym`.
if [ -n "${PERF:-}" ]; then
  need perf linux-perf
  perf record -F ${PERF_HZ:-2999} ${PERF_ARGS:-} -p $PID -o "$PERF" > "$WORK/perf.log" 2>&1 &
  PERF_PID=$!
  sleep 1 # perf attaches to every thread before the calls start
  kill -0 $PERF_PID 2>/dev/null || { echo "perf record failed:" >&2; cat "$WORK/perf.log" >&2; exit 1; }
fi
(cd "$WORK" && timeout 600 sipp -sf uac.xml -inf numbers.csv 127.0.0.1:$CG -i 127.0.0.1 -p 25172 \
  -buff_size 4194304 -m "$CALLS" -r "$RATE" -l 4000 -timeout 300s -nostdin > /dev/null 2>&1 || true)
snap > "$WORK/after"
if [ -n "${PERF:-}" ]; then kill -INT $PERF_PID 2>/dev/null || true; wait $PERF_PID || true; fi
kill $PID; wait $PID || true
python3 - "$WORK/before" "$WORK/after" "$CALLS" "$BIN" <<'PY'
import collections, sys
def load(path):
    d = collections.defaultdict(lambda: [0, 0])
    for line in open(path):
        name, cpu, switches = line.split()
        d[name][0] += int(cpu)
        d[name][1] += int(switches)
    return d
before, after, calls = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3])
print(f"{sys.argv[4]}: {calls} calls")
total = 0.0
for name in sorted(after):
    us = (after[name][0] - before[name][0]) / 1e3 / calls
    switches = (after[name][1] - before[name][1]) / calls
    total += us
    if us >= 0.05:
        print(f"  {name:16s} {us:7.1f} us/call  {switches:5.2f} switches/call")
print(f"  {'all threads':16s} {total:7.1f} us/call")
PY
