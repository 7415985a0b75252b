#!/usr/bin/env bash
# Instructions per call of a whole callgate process (every thread, user space), counted by
# callgrind under a sipp load: repeatable on a noisy machine, unlike CPU seconds. Two runs
# with different call counts; their difference over the difference in calls removes start-up
# and shutdown. The kernel's share (sockets, wake-ups) is not counted: benches/load.sh
# measures that. Valgrind does not offer the CPU's SHA extensions, so the audit chain's SHA-256
# runs in software here: ~130,000 of the ~300,000 instructions per call (2026-12-07), where
# natively (SHA-NI) it costs ~2 us per call.
#
#   benches/instructions.sh [BIN] [CALLS_A] [CALLS_B]   defaults: target/release/callgate 500 1500
#
# KEEP_OUT=/tmp/cg keeps each run's profile (/tmp/cg.500, /tmp/cg.1500: callgrind_annotate).
# To compare two builds, run it with each binary (e.g. a worktree of the previous main).
# Calls at 100/s (callgrind slows callgate ~50x); loopback only; needs valgrind and sipp.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/callgate}
A=${2:-500}
B=${3:-1500}
. benches/lib.sh
need valgrind valgrind
need sipp sip-tester
release_bin
UAS=27080; CG=27060; ADMIN=27081
uas_work $UAS
numbers_csv "$WORK/numbers.csv"
timeout 900 sipp -sn uas -i 127.0.0.1 -p $UAS -nostdin -bg > /dev/null 2>&1 || true

count() { # $1 = calls; prints the process's instruction count
  local run="$WORK/run-$1"
  callgate_toml "$run/callgate.toml" "$run" $CG $UAS $ADMIN
  # 19:00 UTC: inside the sample numbers' calling window whatever the hour.
  CALLGATE_FAKE_NOW="$(date -u +%Y-%m-%dT19:00:00Z)" valgrind --tool=callgrind \
    --callgrind-out-file="$run/callgrind.out" "$BIN" run --config "$run/callgate.toml" 2> "$run/log" &
  local pid=$!
  for _ in $(seq 1 120); do
    curl -sf "http://127.0.0.1:$ADMIN/readyz" > /dev/null 2>&1 && break
    sleep 0.5
  done
  timeout 600 sipp -sf tests/sipp/uac_allow.xml -inf "$WORK/numbers.csv" "127.0.0.1:$CG" -i 127.0.0.1 \
    -p 27900 -m "$1" -r 100 -l 2000 -timeout 500s -recv_timeout 10000 -nostdin > /dev/null 2>&1 \
    || echo "sipp reported failed calls ($1 calls)" >&2
  kill -TERM "$pid"
  wait "$pid" || true
  [ -z "${KEEP_OUT:-}" ] || cp "$run/callgrind.out" "$KEEP_OUT.$1"
  grep -E "I +refs" "$run/log" | tail -1 | awk '{gsub(",", "", $NF); print $NF}'
}

IA=$(count "$A")
IB=$(count "$B")
echo "$BIN: $IA instructions for $A calls, $IB for $B calls: $(( (IB - IA) / (B - A) )) per call"
