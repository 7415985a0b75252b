#!/usr/bin/env bash
# The same sipp load, side by side, through every proxy a VoIP team could put in the path:
#
#   direct    sipp UAC -> sipp UAS (no proxy: the latency baseline)
#   null      benches/null_relay.rs: one recv and one send per datagram, no SIP work (the floor)
#   kam-sl    Kamailio, stateless forward, no checks
#   kam-tm    Kamailio, transaction-stateful (tm), no checks
#   kam-dnc   Kamailio, tm + Record-Route + an htable Do-Not-Call lookup (built by hand)
#   callgate  callgate on its default configuration (policy, hash-chained records, metrics)
#
# Kamailio (benches/kamailio/relay.cfg) runs one worker with the production allocator
# (-x fm -X fm). Every proxy is started once and idles while the others run; the runs go
# round-robin (target after target, RUNS rounds) so the machine's noise falls on all alike.
# CPU is the proxy's whole process tree (every thread and, for Kamailio, every process), from
# /proc/*/schedstat, in nanoseconds. Prints per target: CPU per call (each run), the ratio to
# the null relay of the same round, calls ok/failed, and with LATENCY=1 INVITE->200 p50/p99 in
# microseconds and the p99 added (proxied minus direct), from a tcpdump capture of sipp's UAC
# port (benches/sip_latency.py; sipp itself times in milliseconds). The capture's tap costs the
# sender CPU on every loopback packet: compare CPU from runs without it.
#
#   benches/compare.sh [CALLS] [RATE] [RUNS]    defaults: 10000 calls at 1000 calls/s, 3 rounds
#
# TARGETS="null callgate" runs a subset (direct always runs); callgate-2w is callgate with
# sip.workers = 2 (with UAC_T_MODE=un the dialer opens a socket per call, so its calls spread
# over the workers; LATENCY=1 cannot follow those ports, and the null relay cannot serve them).
# SATURATE=CALLS measures saturation instead: each path as fast as it carries calls with LIMIT
# (100) in flight, and the cores the proxy and sipp used. RATES="1000 2000 ..." measures the ceiling instead: every rate for SECS
# (5) seconds, and per target the highest rate with >= 99.9% of calls ok and >= 99% of
# INVITE->200 under 10 ms (sipp's millisecond buckets). BIN=path measures another
# callgate build; BASE_BIN=path adds the target "base", that build beside BIN (a change measured
# side by side with the main it started from: build main in a worktree).
# Loopback only; every sipp run is bounded by -m and a timeout.
# Needs sipp (sip-tester) and kamailio; LATENCY=1 needs tcpdump.
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS=${1:-10000}
RATE=${2:-1000}
RUNS=${3:-3}
. benches/lib.sh
need sipp sip-tester
need kamailio kamailio
[ -z "${LATENCY:-}" ] || need tcpdump tcpdump
release_bin
NULL_BIN=$(null_relay_bin)
TARGETS=${TARGETS:-null kam-sl kam-tm kam-dnc callgate}

UAS=25080 ADMIN=25081
declare -A PORT=([direct]=$UAS [null]=25061 [kam-sl]=25062 [kam-tm]=25063 [kam-dnc]=25064 [callgate]=25060 [base]=25065 [callgate-2w]=25066)
[ -z "${BASE_BIN:-}" ] || [[ " $TARGETS " == *" base "* ]] || TARGETS="$TARGETS base"
# UAC_T=un: the dialer opens a socket per call (senders spread over callgate's UDP workers).
UAC_T=()
if [ "${UAC_T_MODE:-u1}" = un ]; then
  UAC_T=(-t un -max_socket 5000)
  # The null relay answers the last sender: it cannot serve a socket per call.
  [[ " $TARGETS " != *" null "* ]] || { echo "UAC_T_MODE=un: leave out the null target" >&2; exit 1; }
  [ -z "${LATENCY:-}" ] || { echo "UAC_T_MODE=un: LATENCY=1 cannot follow a socket per call" >&2; exit 1; }
fi
declare -A PID
uas_work $UAS
[ -z "${KEEP:-}" ] || { echo "work directory kept: $WORK"; trap 'kill $(jobs -p) 2>/dev/null; pkill -f "sipp -sn uas -i 127.0.0.1 -p $UAS" || true' EXIT; }
cp tests/sipp/uac_allow.xml "$WORK/uac.xml"
numbers_csv "$WORK/numbers.csv"
# sipp's sockets get 4 MB buffers (its default, 64 KB, overflows in bursts at a few thousand
# calls/s: the calls lost were sipp's, not the proxy's; the kernel caps it at net.core.rmem_max).
SIPP_BUF=(-buff_size 4194304)
timeout 3600 sipp -sn uas -i 127.0.0.1 -p $UAS "${SIPP_BUF[@]}" -nostdin -bg > /dev/null 2>&1 || true

kamailio_on() { # target, then -A flags
  local t=$1; shift
  mkdir -p "$WORK/$t"
  kamailio -f benches/kamailio/relay.cfg -DD -E -m 256 -M 16 -x fm -X fm "$@" \
    -A "NEXT_HOP=\"sip:127.0.0.1:$UAS\"" -l "udp:127.0.0.1:${PORT[$t]}" \
    -Y "$WORK/$t" -w "$WORK/$t" > /dev/null 2> "$WORK/$t/log" &
  PID[$t]=$!
}
callgate_on() { # target, binary, admin port, [sip.workers]
  mkdir -p "$WORK/$1"
  callgate_toml "$WORK/$1/callgate.toml" "$WORK/$1" "${PORT[$1]}" $UAS "$3"
  sed -i "s/^listen = \"127.0.0.1:${PORT[$1]}\"/&\nworkers = ${4:-1}/" "$WORK/$1/callgate.toml"
  CALLGATE_FAKE_NOW="$(date -u +%Y-%m-%dT19:00:00Z)" "$2" run --config "$WORK/$1/callgate.toml" 2> "$WORK/$1/log" &
  PID[$1]=$!
  wait_ready "$3"
}
for t in $TARGETS; do
  case $t in
    null)
      NULL_RELAY_LISTEN="127.0.0.1:${PORT[null]}" NULL_RELAY_UPSTREAM="127.0.0.1:$UAS" "$NULL_BIN" &
      PID[null]=$! ;;
    kam-sl) kamailio_on kam-sl ;;
    kam-tm) kamailio_on kam-tm -A TM ;;
    kam-dnc) kamailio_on kam-dnc -A DNC ;;
    callgate) callgate_on callgate "$BIN" $ADMIN ;;
    base) callgate_on base "$BASE_BIN" $((ADMIN + 1)) ;;
    callgate-2w) callgate_on callgate-2w "$BIN" $((ADMIN + 2)) 2 ;;
    *) echo "unknown target $t" >&2; exit 1 ;;
  esac
done
sleep 1

# CPU nanoseconds of a process, its threads and its descendants.
cpu_ns() {
  local p total=0
  for p in $1 $(pgrep -P "$1" || true); do
    for s in /proc/$p/task/*/schedstat; do
      total=$((total + $(cut -d' ' -f1 < "$s" 2>/dev/null || echo 0)))
    done
  done
  echo $total
}

# run TARGET ROUND RATE CALLS: one sipp run; appends
# "target round rate cpu_ns ok failed p50_us p99_us share_under_10ms".
run() {
  local t=$1 r=$2 rate=$3 calls=$4 before=0 after=0 port=$((26000 + RANDOM % 2000)) cap=""
  if [ -n "${LATENCY:-}" ]; then
    cap="$WORK/cap_${t}_$r.pcap"
    timeout 900 tcpdump -i lo -n -B 16384 -w "$cap" "udp and port $port" 2> "$cap.log" &
    for _ in $(seq 1 100); do grep -q listening "$cap.log" && break; sleep 0.05; done
  fi
  [ "$t" = direct ] || before=$(cpu_ns "${PID[$t]}")
  (cd "$WORK" && timeout 600 sipp -sf uac.xml -inf numbers.csv "127.0.0.1:${PORT[$t]}" -i 127.0.0.1 -p $port \
    "${UAC_T[@]}" "${SIPP_BUF[@]}" -m "$calls" -r "$rate" -l 4000 -timeout 300s -recv_timeout 10000 -nostdin \
    -trace_stat -stf "stat_${t}_$r.csv" > /dev/null 2>&1 || true)
  [ "$t" = direct ] || after=$(cpu_ns "${PID[$t]}")
  if [ -n "$cap" ]; then pkill -INT -f "tcpdump -i lo -n -B 16384 -w $cap" || true; wait $! 2>/dev/null || true; fi
  python3 benches/sip_latency.py "$WORK/stat_${t}_$r.csv" "$cap" "$port" "$t $r $rate $((after - before))" >> "$WORK/results"
  rm -f "$WORK/stat_${t}_$r.csv"
}

# saturate TARGET ROUND CALLS: the dialer keeps LIMIT calls in flight (no pause in a call) as
# fast as the path carries them; appends "target round calls ok failed wall_ns proxy_ns uac_ns
# uas_ns" to WORK/saturated: the rate reached and where the two cores went.
saturate() {
  local t=$1 r=$2 calls=$3 before=0 after=0 uas_before uas_after start end uac port=$((26000 + RANDOM % 2000))
  local uas_pid; uas_pid=$(pgrep -f "sipp -sn uas -i 127.0.0.1 -p $UAS" | head -1)
  [ "$t" = direct ] || before=$(cpu_ns "${PID[$t]}")
  uas_before=$(cpu_ns "$uas_pid"); start=$(date +%s%N)
  uac=$(cd "$WORK" && python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print(int((u.ru_utime + u.ru_stime) * 1e9))' timeout 600 sipp -sf uac_nopause.xml -inf numbers.csv "127.0.0.1:${PORT[$t]}" \
    -i 127.0.0.1 -p $port "${UAC_T[@]}" "${SIPP_BUF[@]}" -m "$calls" -r 100000 -l "${LIMIT:-100}" -timeout 300s \
    -recv_timeout 10000 -nostdin -trace_stat -stf "sat_${t}_$r.csv")
  end=$(date +%s%N); uas_after=$(cpu_ns "$uas_pid")
  [ "$t" = direct ] || after=$(cpu_ns "${PID[$t]}")
  local okfail; okfail=$(python3 benches/sip_latency.py "$WORK/sat_${t}_$r.csv" "" 0 "" | awk '{print $1, $2}')
  echo "$t $r $calls $okfail $((end - start)) $((after - before)) $uac $((uas_after - uas_before))" >> "$WORK/saturated"
  rm -f "$WORK/sat_${t}_$r.csv"
}

if [ -n "${SATURATE:-}" ]; then
  # Saturation: SATURATE calls per run, as fast as each path carries them (LIMIT in flight).
  sed '/<pause/d' "$WORK/uac.xml" > "$WORK/uac_nopause.xml"
  echo "saturation: $SATURATE calls, ${LIMIT:-100} in flight, rounds=$RUNS, uac=${UAC_T_MODE:-u1} targets: direct $TARGETS ($(date -u +%F), $(nproc) cores)"
  for r in $(seq 1 "$RUNS"); do
    for t in direct $TARGETS; do saturate "$t" "$r" "$SATURATE"; done
  done
  for t in $TARGETS; do kill "${PID[$t]}" 2>/dev/null || true; done
  python3 - "$WORK/saturated" <<'PY'
import sys
print(f"{'target':12s} {'calls/s (each round)':24s} {'ok':>7s} {'failed':>6s} {'proxy cores':>11s} {'sipp cores':>10s} {'proxy us/call':>13s}")
res = {}
for line in open(sys.argv[1]):
    t, r, calls, ok, failed, wall, proxy, uac, uas = line.split()
    res.setdefault(t, []).append((int(ok), int(failed), int(wall), int(proxy), int(uac) + int(uas)))
for t, runs in res.items():
    rates = " ".join(f"{ok / (w / 1e9):.0f}" for ok, _, w, _, _ in runs)
    ok, failed = sum(x[0] for x in runs), sum(x[1] for x in runs)
    wall = sum(x[2] for x in runs)
    proxy, sipp = sum(x[3] for x in runs) / wall, sum(x[4] for x in runs) / wall
    per_call = sum(x[3] for x in runs) / 1000 / max(ok, 1)
    print(f"{t:12s} {rates:24s} {ok:7d} {failed:6d} {proxy:11.2f} {sipp:10.2f} {per_call if t != 'direct' else 0:13.1f}")
PY
  exit 0
fi

if [ -n "${RATES:-}" ]; then
  # The ceiling: each rate for SECS seconds, rates rising, every target, RUNS rounds.
  echo "ceiling: rates $RATES, ${SECS:-5} s each, rounds=$RUNS, uac=${UAC_T_MODE:-u1} targets: direct $TARGETS ($(date -u +%F))"
  for r in $(seq 1 "$RUNS"); do
    for rate in $RATES; do
      for t in direct $TARGETS; do run "$t" "$r" "$rate" $((rate * ${SECS:-5})); done
    done
  done
  for t in $TARGETS; do kill "${PID[$t]}" 2>/dev/null || true; done
  python3 - "$WORK/results" <<'PY'
import sys
res = {}
for line in open(sys.argv[1]):
    t, r, rate, cpu, ok, failed, p50, p99, under10 = line.split()
    res.setdefault(t, {}).setdefault(int(r), []).append((int(rate), int(ok), int(failed), float(under10)))
print("highest rate (climbing, up to the first miss) with >= 99.9% of calls ok and >= 99% of INVITE->200 under 10 ms, per round:")
for t, rounds in res.items():
    best = []
    for r in sorted(rounds):
        # The climb stops at the first rate that misses either bound.
        best_rate = "none"
        for rate, ok, failed, u in sorted(rounds[r]):
            if not (ok and ok / (ok + failed) >= 0.999 and u >= 0.99):
                break
            best_rate = str(rate)
        best.append(best_rate)
    print(f"  {t:12s} {' '.join(best)}")
PY
  exit 0
fi

echo "calls=$CALLS rate=$RATE rounds=$RUNS uac=${UAC_T_MODE:-u1} targets: direct $TARGETS ($(date -u +%F))"
for r in $(seq 1 "$RUNS"); do
  for t in direct $TARGETS; do
    run "$t" "$r" "$RATE" "$CALLS"
  done
done
for t in $TARGETS; do kill "${PID[$t]}" 2>/dev/null || true; done

python3 - "$WORK/results" "$CALLS" <<'PY'
import math, sys, statistics as st
calls = int(sys.argv[2])
res = {}
for line in open(sys.argv[1]):
    t, r, _, cpu, ok, failed, p50, p99, _ = line.split()
    res.setdefault(t, {})[int(r)] = dict(cpu=int(cpu) / 1000 / calls, ok=int(ok), failed=int(failed), p50=float(p50), p99=float(p99))
direct, null = res.get("direct", {}), res.get("null")
med = lambda xs: st.median(xs) if xs else math.nan
print(f"{'target':9s} {'CPU us/call (each round)':26s} {'x null':>10s} {'ok':>7s} {'failed':>6s} {'p50 us':>7s} {'p99 us':>7s} {'p99 added':>9s}")
for t, runs in res.items():
    rounds = sorted(runs)
    cpu = " ".join(f"{runs[r]['cpu']:.1f}" for r in rounds) if t != "direct" else "-"
    ratio = "-"
    if null and t not in ("direct", "null"):
        rs = [runs[r]["cpu"] / null[r]["cpu"] for r in rounds if r in null and null[r]["cpu"] > 0]
        ratio = f"{min(rs):.2f}-{max(rs):.2f}" if rs else "-"
    ok, failed = sum(runs[r]["ok"] for r in rounds), sum(runs[r]["failed"] for r in rounds)
    p50, p99 = med([runs[r]["p50"] for r in rounds]), med([runs[r]["p99"] for r in rounds])
    added = med([runs[r]["p99"] - direct[r]["p99"] for r in rounds if r in direct]) if t != "direct" else 0
    print(f"{t:9s} {cpu:26s} {ratio:>10s} {ok:7d} {failed:6d} {p50:7.0f} {p99:7.0f} {added:9.0f}")
PY
