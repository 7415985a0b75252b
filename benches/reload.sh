#!/usr/bin/env bash
# Reload under load: swap a new national snapshot in while sipp drives calls through callgate,
# and compare with a run without a reload in the same session.
#
#   benches/reload.sh [NUMBERS] [RATE] [SECONDS]     defaults: 250000000 1000 40
#
# Builds (once, cached in $CALLGATE_BENCH_DIR, default /tmp/callgate-bench) a synthetic registry
# of NUMBERS numbers and a 1 M-line change list, compiles snapshot A and applies the change list
# to get snapshot B (timing both). Then: callgate on A; run 1 = RATE calls/s for SECONDS with no
# reload; run 2 = the same with B moved over A and POST /v1/reload a third of the way in.
# Reports failed calls, INVITE->200 response times (p50/p99/max, from sipp -trace_rtt), the
# reload time, and callgate's resident memory: steady, peak during the reload, after it.
# Loopback only; every sipp run is bounded by -m and a timeout. Needs sipp (sip-tester), ~6 GB
# of disk at 250 M numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
NUMBERS=${1:-250000000}
RATE=${2:-1000}
SECONDS_PER_RUN=${3:-40}
CALLS=$((RATE * SECONDS_PER_RUN))
command -v sipp >/dev/null || { echo "sipp missing: apt-get install -y sip-tester" >&2; exit 1; }
cargo build --release -q
BIN=$PWD/target/release/callgate
CACHE=${CALLGATE_BENCH_DIR:-/tmp/callgate-bench}/n$NUMBERS
mkdir -p "$CACHE"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; pkill -f "sipp -sn uas -i 127.0.0.1 -p $UAS_PORT" 2>/dev/null || true; rm -rf "$WORK"' EXIT
UAS_PORT=25180; CG_PORT=25160; ADMIN_PORT=25181

if [ ! -f "$CACHE/B.cgsnap" ]; then
  echo "== building the synthetic registry ($NUMBERS numbers) in $CACHE"
  "$BIN" lists generate --count "$NUMBERS" --seed 1 --out "$CACHE/full.txt" \
    --changes 1000000 --changes-out "$CACHE/changes.txt"
  /usr/bin/time -f "   compile: %e s wall, max RSS %M KB" \
    "$BIN" lists compile --id national --kind national --full "$CACHE/full.txt" --out "$CACHE/A.cgsnap"
  /usr/bin/time -f "   apply 1 M-line change list: %e s wall, max RSS %M KB" \
    "$BIN" lists compile --base "$CACHE/A.cgsnap" --changes "$CACHE/changes.txt" --out "$CACHE/B.cgsnap"
  rm -f "$CACHE/full.txt"
fi
/usr/bin/time -f "   load + verify snapshot: %e s wall" "$BIN" lists info "$CACHE/A.cgsnap" | grep -E "^(version|entries|loaded)"

# Called numbers: Toronto (416), on no list, so every call is allowed and completes.
python3 - "$WORK/numbers.csv" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("SEQUENTIAL\n")
    for i in range(5000):
        f.write(f"416{2000000 + i * 37 % 7999999:07d}\n")
PY
# A number the change list adds: blocked only once B is in service.
ADDED=$(grep -m1 ',A$' "$CACHE/changes.txt" | cut -d, -f1)

mkdir -p "$WORK/data" "$WORK/var"
cp "$CACHE/A.cgsnap" "$WORK/data/national.cgsnap"
cat > "$WORK/data/lists.toml" <<EOF
[[list]]
id = "national"
kind = "national"
file = "national.cgsnap"
downloaded = "$(date -u +%Y-%m-%d)"
EOF
. benches/lib.sh
callgate_toml "$WORK/callgate.toml" "$WORK" $CG_PORT $UAS_PORT $ADMIN_PORT "$WORK/data"

timeout 900 sipp -sn uas -i 127.0.0.1 -p $UAS_PORT -nostdin -bg > /dev/null 2>&1 || true
T0=$(date +%s.%N)
CALLGATE_FAKE_NOW="$(date -u +%Y-%m-%dT19:00:00Z)" "$BIN" run --config "$WORK/callgate.toml" 2> "$WORK/callgate.log" &
CG_PID=$!
for _ in $(seq 1 600); do
  curl -sf "http://127.0.0.1:$ADMIN_PORT/readyz" > /dev/null 2>&1 && break
  sleep 0.1
done
echo "   callgate ready (lists loaded, prefilter built) after $(python3 -c "print(f'{$(date +%s.%N) - $T0:.2f}')") s"

rss_kb() { awk '/^VmRSS/ {print $2}' /proc/$CG_PID/status; }
# Sample RSS every 20 ms into a file while a run goes on.
sample_rss() { while kill -0 $CG_PID 2>/dev/null; do rss_kb; sleep 0.02; done > "$1"; }

run_uac() { # $1 = label
  local dir="$WORK/$1"; mkdir -p "$dir"
  (cd "$dir" && timeout 600 sipp -sf "$OLDPWD/tests/sipp/uac_allow.xml" -inf "$WORK/numbers.csv" \
    "127.0.0.1:$CG_PORT" -i 127.0.0.1 -p $((26000 + RANDOM % 2000)) \
    -m "$CALLS" -r "$RATE" -l 5000 -timeout 300s -recv_timeout 10000 -nostdin \
    -trace_stat -stf stat.csv -trace_rtt -rtt_freq 1 > /dev/null 2>&1 || true)
}

report() { # $1 = label
  python3 - "$WORK/$1" "$1" <<'PY'
import csv, glob, sys
d, label = sys.argv[1], sys.argv[2]
rows = list(csv.reader(open(f"{d}/stat.csv"), delimiter=";"))
head, last = rows[0], rows[-1]
col = lambda name: last[head.index(name)]
rtts = []
for f in glob.glob(f"{d}/*_rtt.csv"):
    for r in list(csv.reader(open(f), delimiter=";"))[1:]:
        try:
            rtts.append(float(r[1]))
        except (ValueError, IndexError):
            pass
rtts.sort()
q = lambda p: rtts[min(len(rtts) - 1, int(p * len(rtts)))] if rtts else float("nan")
# sipp's response times have millisecond resolution: 0 means under 1 ms.
slow = lambda ms: 100 * sum(1 for r in rtts if r >= ms) / max(1, len(rtts))
print(f"{label:10s} ok={col('SuccessfulCall(C)')} failed={col('FailedCall(C)')} retrans={col('Retransmissions(C)')} "
      f"INVITE->200 ms (1 ms resolution): p50={q(0.5):.0f} p99={q(0.99):.0f} p99.9={q(0.999):.0f} max={rtts[-1] if rtts else 0:.0f}; "
      f">=1 ms {slow(1):.2f}%, >=10 ms {slow(10):.3f}% (n={len(rtts)})")
PY
}

STEADY=$(rss_kb)
echo "== run 1: $CALLS calls at $RATE/s, no reload (callgate RSS $((STEADY / 1024)) MB)"
sample_rss "$WORK/rss1.txt" & S1=$!
run_uac noreload
kill $S1 2>/dev/null || true
report noreload

echo "== run 2: the same, snapshot B swapped in after $((SECONDS_PER_RUN / 3)) s"
sample_rss "$WORK/rss2.txt" & S2=$!
run_uac reload &
UAC=$!
sleep $((SECONDS_PER_RUN / 3))
cp "$CACHE/B.cgsnap" "$WORK/data/national.cgsnap.new"
mv "$WORK/data/national.cgsnap.new" "$WORK/data/national.cgsnap"
R0=$(date +%s.%N)
curl -sf -X POST "http://127.0.0.1:$ADMIN_PORT/v1/reload" > "$WORK/reload.json"
R1=$(date +%s.%N)
wait $UAC
sleep 1
kill $S2 2>/dev/null || true
report reload
python3 - "$WORK" "$STEADY" "$R0" "$R1" <<'PY'
import json, sys
w, idle, r0, r1 = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
load = lambda f: [int(x) for x in open(f"{w}/{f}").read().split() if x.strip()]
run1, run2 = load("rss1.txt"), load("rss2.txt")
steady = max(run1)  # serving 1,000 calls/s without a reload
peak, after = max(run2), run2[-1]
print(f"reload: {r1 - r0:.2f} s (load + verify + prefilter rebuild)")
print(f"RSS: idle {idle // 1024} MB; steady under load (run 1 max) {steady // 1024} MB; "
      f"peak during the reload {peak // 1024} MB = {peak / steady:.2f}x steady; after {after // 1024} MB")
print("reload report:", json.dumps(json.load(open(f"{w}/reload.json"))["report"]))
PY
echo -n "number $ADDED (added by the change list) now: "
curl -s "http://127.0.0.1:$ADMIN_PORT/v1/check?number=$ADDED" | python3 -c "import json,sys; v=json.load(sys.stdin); print(v['verdict'], [l['version'] for l in v.get('matched_lists', [])])"
kill -TERM $CG_PID; wait $CG_PID 2>/dev/null || true
