#!/usr/bin/env bash
# callgate's CPU per call with the records index kept current (records.index = true, the
# default) and without it, alternated in one session (this machine is noisy: compare the
# pairs). Each round is one `benches/load.sh CALLS RATE 1` per setting; the CPU is the whole
# process's, the index's thread included.
#   bash benches/records_index_cpu.sh [CALLS] [RATE] [ROUNDS]   defaults: 20000 1000 3
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS=${1:-20000}; RATE=${2:-1000}; ROUNDS=${3:-3}
cargo build --release -q
for r in $(seq 1 "$ROUNDS"); do
  for index in on off; do
    us=$(INDEX=$index BIN=target/release/callgate bash benches/load.sh "$CALLS" "$RATE" 1 \
      | sed -n 's/.*(\([0-9]*\) us\/call).*/\1/p')
    echo "round $r index=$index: $us us/call"
  done
done
