#!/usr/bin/env bash
# callgate's CPU per call with the records index kept current (records.index = true, the
# default) and without it, alternated in one session (this machine is noisy: compare the
# pairs). Each round is one `benches/load.sh CALLS RATE 1` per setting; the CPU is the whole
# process's, the index's thread included, and by thread: the index's own (records-index) and
# the audit writer's (which hands it each line's summary) are the index's cost, measured
# without the noise of the rest.
#   bash benches/records_index_cpu.sh [CALLS] [RATE] [ROUNDS]   defaults: 20000 1000 3
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS=${1:-20000}; RATE=${2:-1000}; ROUNDS=${3:-3}
cargo build --release -q
for r in $(seq 1 "$ROUNDS"); do
  for index in on off; do
    out=$(INDEX=$index BIN=target/release/callgate bash benches/load.sh "$CALLS" "$RATE" 1)
    us=$(sed -n 's/.*(\([0-9]*\) us\/call).*/\1/p' <<< "$out")
    threads=$(sed -n 's/^  thread \(records-index\|audit-writer\): \(.*\) us\/call/\1 \2/p' <<< "$out" \
      | tr '\n' ' ')
    echo "round $r index=$index: $us us/call (${threads% })"
  done
done
