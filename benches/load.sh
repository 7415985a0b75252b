#!/usr/bin/env bash
# Load benchmark with sipp: calls per second and response time, direct UAC->UAS versus
# UAC->callgate->UAS, alternated in one session (this machine is noisy: compare ratios), plus
# callgate's CPU seconds per 10,000 calls (from /proc/PID/stat).
#
#   benches/load.sh [CALLS] [RATE] [RUNS]      defaults: 5000 calls at 1000 calls/s, 3 runs each
#
# DURABILITY=before-forward measures that audit mode. UDP_RCVBUF sets
# sip.udp_receive_buffer_bytes (0: the kernel default). TRANSPORT=tcp runs sipp and callgate's
# upstream over TCP (one connection each way). TRANSPORT=tls runs every call over TLS
# (Debian's sipp has no TLS, so stunnel wraps it; certificates are made with openssl per run):
#   direct:  sipp UAC -TCP-> stunnel -TLS-> stunnel -TCP-> sipp UAS
#   proxied: sipp UAC -TCP-> stunnel -TLS-> callgate -TLS-> stunnel -TCP-> sipp UAS
#
# RELAY=null puts benches/null_relay.rs (one recv and one send per datagram, no SIP work) in
# callgate's place: the syscall floor, to set callgate's CPU per call against (UDP only).
#
# INDEX=off runs callgate without its records index (records.index = false), to set the
# index's CPU per call against (benches/records_index_cpu.sh alternates the two);
# INDEX_INTERVAL_MS sets records.index_interval_ms.
#
# SHARED_URL=postgres://... runs callgate with [shared] on that database (benches/shared_cpu.sh
# alternates it with a standalone callgate).
#
# KEEP=1 keeps the work directory (configs, callgate.log). Loopback only; every sipp run is
# bounded by -m and a timeout. Needs sipp (sip-tester), and for TLS stunnel4 and openssl.
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS=${1:-5000}
RATE=${2:-1000}
RUNS=${3:-3}
command -v sipp >/dev/null || { echo "sipp missing: apt-get install -y sip-tester" >&2; exit 1; }
# BIN=path measures another build (an older main, built in a worktree) the same way.
BIN=${BIN:-target/release/callgate}
[ "$BIN" != target/release/callgate ] || cargo build --release -q
WORK=$(mktemp -d)
UAS_PORT=25080; CG_PORT=25060; ADMIN_PORT=25081
cleanup() { # also on early exit: sipp -bg and stunnel outlive the script's jobs
  kill $(jobs -p) 2>/dev/null || true
  [ -f "$WORK/stunnel.pid" ] && kill "$(cat "$WORK/stunnel.pid")" 2>/dev/null
  pkill -f "sipp -sn uas .*-p $UAS_PORT" || true
  [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
TRANSPORT=${TRANSPORT:-udp}
SIPP_T=(); DIRECT="127.0.0.1:$UAS_PORT"; PROXIED="127.0.0.1:$CG_PORT"; TLS_CFG=""
UP_CFG="address = \"127.0.0.1:$UAS_PORT\""
if [ "$TRANSPORT" = tcp ]; then
  SIPP_T=(-t t1)
  UP_CFG="address = \"127.0.0.1:$UAS_PORT\"
transport = \"tcp\""
elif [ "$TRANSPORT" = tls ]; then
  command -v stunnel4 >/dev/null || { echo "stunnel missing: apt-get install -y stunnel4" >&2; exit 1; }
  CG_TLS=25061; ST_CARRIER=25090; ST_DIRECT=25091; ST_DIALER=25092
  leaf() { # $1 = name
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/$1.key" \
      -out "$WORK/$1.csr" -subj "/CN=$1" 2>/dev/null
    openssl x509 -req -in "$WORK/$1.csr" -CA "$WORK/ca.crt" -CAkey "$WORK/ca.key" -CAcreateserial \
      -out "$WORK/$1.crt" -days 2 -extfile <(printf "subjectAltName=DNS:%s" "$1") 2>/dev/null
  }
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/ca.key" \
    -out "$WORK/ca.crt" -days 2 -subj "/CN=bench CA" 2>/dev/null
  leaf callgate.test; leaf carrier.test
  cat > "$WORK/stunnel.conf" <<STUNNEL
foreground = no
pid = $WORK/stunnel.pid
output = $WORK/stunnel.log
[carrier]
accept = 127.0.0.1:$ST_CARRIER
connect = 127.0.0.1:$UAS_PORT
cert = $WORK/carrier.test.crt
key = $WORK/carrier.test.key
[direct]
client = yes
accept = 127.0.0.1:$ST_DIRECT
connect = 127.0.0.1:$ST_CARRIER
CAfile = $WORK/ca.crt
verifyChain = yes
checkHost = carrier.test
[dialer]
client = yes
accept = 127.0.0.1:$ST_DIALER
connect = 127.0.0.1:$CG_TLS
CAfile = $WORK/ca.crt
verifyChain = yes
checkHost = callgate.test
STUNNEL
  stunnel4 "$WORK/stunnel.conf"
  SIPP_T=(-t t1); DIRECT="127.0.0.1:$ST_DIRECT"; PROXIED="127.0.0.1:$ST_DIALER"
  TLS_CFG="[tls]
listen = \"127.0.0.1:$CG_TLS\"
cert = \"$WORK/callgate.test.crt\"
key = \"$WORK/callgate.test.key\""
  UP_CFG="transport = \"tls\"
tls_ca = \"$WORK/ca.crt\"
tls_server_name = \"carrier.test\"
address = \"127.0.0.1:$ST_CARRIER\""
fi

# Allowed numbers (not on the sample lists).
. benches/lib.sh
numbers_csv "$WORK/numbers.csv"

mkdir -p "$WORK/var"
cat > "$WORK/callgate.toml" <<EOF
[sip]
listen = "127.0.0.1:$CG_PORT"
udp_receive_buffer_bytes = ${UDP_RCVBUF:-4194304}
$TLS_CFG
[upstream]
$UP_CFG
[lists]
data_dir = "$PWD/config/sample-data"
optout_journal = "$WORK/var/optouts.jsonl"
consent_journal = "$WORK/var/consent.jsonl"
caps_journal = "$WORK/var/caps.bin"
emergency_file = "$WORK/var/emergency.json"
[audit]
dir = "$WORK/var/audit"
durability = "${DURABILITY:-async}"
[records]
index = $([ "${INDEX:-on}" = off ] && echo false || echo true)
index_interval_ms = ${INDEX_INTERVAL_MS:-1000}
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
[log]
level = "warn"
$([ -n "${SHARED_URL:-}" ] && printf '[shared]\nurl = "%s"\n' "$SHARED_URL")
EOF

timeout 900 sipp -sn uas "${SIPP_T[@]}" -i 127.0.0.1 -p $UAS_PORT -nostdin -bg > /dev/null 2>&1 || true
if [ "${RELAY:-callgate}" = null ]; then
  [ "$TRANSPORT" = udp ] || { echo "RELAY=null is UDP only" >&2; exit 1; }
  RELAY_BIN=$(null_relay_bin)
  NULL_RELAY_LISTEN="127.0.0.1:$CG_PORT" NULL_RELAY_UPSTREAM="127.0.0.1:$UAS_PORT" "$RELAY_BIN" &
else
  CALLGATE_FAKE_NOW="$(date -u +%Y-%m-%dT19:00:00Z)" "$BIN" run --config "$WORK/callgate.toml" 2> "$WORK/callgate.log" &
fi
CG_PID=$!
sleep 1

cpu_ticks() { awk '{print $14 + $15}' /proc/$CG_PID/stat; }
# CPU ticks by thread name ("name ticks" lines; threads of one name summed).
thread_ticks() {
  for t in /proc/$CG_PID/task/*; do
    printf '%s %s\n' "$(tr ' ' _ < "$t/comm")" "$(awk '{print $14 + $15}' "$t/stat" 2>/dev/null || echo 0)"
  done | awk '{a[$1] += $2} END {for (k in a) print k, a[k]}' | sort
}
TCK=$(getconf CLK_TCK)

run_uac() { # $1 = target, $2 = label, $3 = run
  local stf="$WORK/$2_$3.csv" port=$((26000 + RANDOM % 2000))
  local t0 t1
  t0=$(date +%s.%N)
  timeout 600 sipp -sf tests/sipp/uac_allow.xml -inf "$WORK/numbers.csv" "$1" "${SIPP_T[@]}" -i 127.0.0.1 -p $port \
    -m "$CALLS" -r "$RATE" -l 2000 -timeout 300s -recv_timeout 10000 -nostdin \
    -trace_stat -stf "$stf" -fd 1 -trace_err -error_file "$WORK/$2_$3_errors.log" > /dev/null 2>&1 || true
  t1=$(date +%s.%N)
  python3 - "$stf" "$t0" "$t1" "$2" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter=";"))
head, last = rows[0], rows[-1]
col = lambda name: last[head.index(name)]
def us(v):  # sipp times: HH:MM:SS:mmmuuu
    h, m, s, frac = v.split(":")
    return ((int(h) * 60 + int(m)) * 60 + int(s)) * 1e6 + int(frac)
ok, failed = int(col("SuccessfulCall(C)")), int(col("FailedCall(C)"))
elapsed = float(sys.argv[3]) - float(sys.argv[2])
# sipp measures INVITE->200 with millisecond resolution: report the distribution.
buckets = [(k, int(last[i])) for i, k in enumerate(head) if k.startswith("ResponseTimeRepartition1_")]
total = sum(v for _, v in buckets) or 1
dist = " ".join(f"{k.split('_', 1)[1]}ms:{100 * v / total:.1f}%" for k, v in buckets if v)
print(f"{sys.argv[4]:8s} ok={ok} failed={failed} elapsed={elapsed:.2f}s calls/s={ok/elapsed:.0f} invite->200 {dist} retrans={col('Retransmissions(C)')}")
PY
}

echo "calls=$CALLS rate=$RATE runs=$RUNS transport=$TRANSPORT relay=${RELAY:-callgate} index=${INDEX:-on} (alternating direct / proxied)"
TOTAL_PROXIED=0
C0=$(cpu_ticks)
for r in $(seq 1 "$RUNS"); do
  run_uac "$DIRECT" direct "$r"
  c1=$(cpu_ticks)
  thread_ticks > "$WORK/threads_before_$r"
  run_uac "$PROXIED" proxied "$r"
  c2=$(cpu_ticks)
  thread_ticks > "$WORK/threads_after_$r"
  TOTAL_PROXIED=$((TOTAL_PROXIED + c2 - c1))
done
python3 -c "
ticks=$TOTAL_PROXIED; tck=$TCK; calls=$CALLS*$RUNS
print(f'${RELAY:-callgate} CPU: {ticks/tck:.2f} s for {calls} proxied calls = {ticks/tck/calls*10000:.2f} CPU-s per 10,000 calls ({ticks/tck/calls*1e6:.0f} us/call)')
"
# Where the CPU went, by thread (during the proxied runs).
cat "$WORK"/threads_before_* | awk '{print $1, -$2}' | cat - "$WORK"/threads_after_* \
  | awk -v tck="$TCK" -v calls=$((CALLS * RUNS)) '{a[$1] += $2}
    END {for (k in a) if (a[k] > 0) printf "  thread %s: %.1f us/call\n", k, a[k] / tck / calls * 1e6}' | sort
curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" 2>/dev/null | grep -E '^callgate_decisions_total.* [1-9]|^callgate_audit_records_written_total|^callgate_send_errors_total' || true
# Datagrams the kernel dropped because a UDP receive buffer was full (/proc/net/udp): the
# proxy's port, and any other socket (sipp's) that dropped some.
python3 - "$CG_PORT" <<'PY'
import sys
for line in open("/proc/net/udp").readlines()[1:]:
    f = line.split()
    port, drops = int(f[1].split(":")[1], 16), int(f[-1])
    if port == int(sys.argv[1]) or drops:
        print(f"udp receive-buffer drops at port {port}: {drops}")
PY
kill -TERM $CG_PID; wait $CG_PID 2>/dev/null || true
