#!/usr/bin/env bash
# Start-to-bound time with RECORDS lines in the crash-recovery window: today's audit file
# holds RECORDS/2 decisions, each followed by its call record but the last ONE_IN_OPEN-th
# (left open, as a kill -9 leaves them), written as callgate writes them. callgate is started
# on it and timed until its admin API answers (the SIP sockets are bound before it).
#
#   benches/recovery_start.sh [RECORDS] [RUNS]     default 10,000,000 records, 3 runs
#
# Needs ~1 KB of disk per record in a temporary directory; removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS=${1:-10000000}
RUNS=${2:-3}
BIN=${BIN:-target/release/callgate}
[ "$BIN" != target/release/callgate ] || cargo build --release -q
WORK=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
. benches/lib.sh
callgate_toml "$WORK/callgate.toml" "$WORK" 29060 29080 29081
mkdir -p "$WORK/var/audit"
DAY=$(date -u +%Y-%m-%d)
python3 - "$WORK/var/audit/audit-$DAY.jsonl" "$RECORDS" "$DAY" <<'PY'
import sys
path, records, day = sys.argv[1], int(sys.argv[2]), sys.argv[3]
policy = ('{"campaign":"spring","seller":"Acme Corp","subject":"Acme Corp","audience":"consumer",'
          '"purpose":"marketing","method":"live","caller_id":"+12025550100","npa_state":"CA",'
          '"zones":["America/Los_Angeles"],"binding_zone":"America/Los_Angeles",'
          '"local_time":"2026-12-06T11:00:00","versions":{"rules":"r1","consent_seq":0,"optouts_seq":0,"list_generation":1}}')
with open(path, "w", buffering=1 << 24) as f:
    for i in range(records // 2):
        ts = f"{day}T{(i // 3600000) % 24:02d}:{(i // 60000) % 60:02d}:{(i // 1000) % 60:02d}.{i % 1000:03d}Z"
        f.write(f'{{"id":"bench-{i}","ts":"{ts}","call_id":"c{i}@192.0.2.20","source":"192.0.2.20:5061",'
                f'"transport":"udp","from":"\\"Acme\\" <sip:+12025550100@192.0.2.20>;tag={i}",'
                f'"called_raw":"sip:4155550100@192.0.2.10","called_e164":"+14155550100","verdict":"allowed",'
                f'"reasons":[],"sip_status":null,"list_generation":1,"lists":[{{"id":"national","kind":"national",'
                f'"version":"2026-11-30","entries":1000000,"downloaded":"2026-11-30T00:00:00Z","sample":false,"hit":false}}],'
                f'"optouts_seq":0,"policy":{policy},"checks":"hours=pass,national=pass","latency_us":31,'
                f'"prev":"{i:064x}"}}\n')
        if i % 1000 != 999:
            f.write(f'{{"ts":"{ts}","call":{{"decision":"bench-{i}","call_id":"c{i}@192.0.2.20",'
                    f'"disposition":"answered","ended_by":"dialer","duration_ms":31000}},"prev":"{i:064x}"}}\n')
PY
ls -l "$WORK/var/audit" | tail -1
cp "$WORK/var/audit/audit-$DAY.jsonl" "$WORK/pristine.jsonl"
for run in $(seq 1 "$RUNS"); do
  cp "$WORK/pristine.jsonl" "$WORK/var/audit/audit-$DAY.jsonl"
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  start=$(date +%s.%N)
  CALLGATE_FAKE_NOW="${DAY}T19:00:00Z" "$BIN" run --config "$WORK/callgate.toml" 2> "$WORK/log" &
  PID=$!
  until curl -sf "http://127.0.0.1:29081/healthz" > /dev/null 2>&1; do
    kill -0 $PID 2>/dev/null || { echo "callgate exited:"; tail -5 "$WORK/log"; exit 1; }
    sleep 0.05
  done
  end=$(date +%s.%N)
  echo "run $run: $RECORDS records in the window: bound and answering after $(python3 -c "print(f'{$end - $start:.2f}')") s ($(sed 's/\x1b\[[0-9;]*m//g' "$WORK/log" | grep -o 'calls=[0-9]*' | head -1) left open, recorded at this start)"
  kill -TERM $PID; wait $PID || true
done
