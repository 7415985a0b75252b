#!/usr/bin/env bash
# callgate's CPU per call with [shared] on (a PostgreSQL started here, on loopback) and off,
# alternated in one session (this machine is noisy: compare the pairs). Each round is one
# `benches/load.sh CALLS RATE 1` per setting; the CPU is the whole process's, the thread that
# follows the database included.
#   bash benches/shared_cpu.sh [CALLS] [RATE] [ROUNDS]   defaults: 20000 1000 3
# Needs PostgreSQL (postgresql-15) and sipp; as root the server runs as the postgres user.
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS=${1:-20000}; RATE=${2:-1000}; ROUNDS=${3:-3}
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort | tail -1)
[ -x "$PG_BIN/initdb" ] || { echo "PostgreSQL missing: apt-get install -y postgresql-15" >&2; exit 1; }
cargo build --release -q
WORK=$(mktemp -d)
AS=()
if [ "$(id -u)" = 0 ]; then chown postgres "$WORK"; AS=(runuser -u postgres --); fi
PG_PID=""
cleanup() { [ -n "$PG_PID" ] && kill "$PG_PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
"${AS[@]}" "$PG_BIN/initdb" -U callgate --auth=trust --no-sync -D "$WORK/data" > /dev/null
"${AS[@]}" "$PG_BIN/postgres" -D "$WORK/data" -p 25432 -k "$WORK" -c listen_addresses=127.0.0.1 \
  2> "$WORK/server.log" &
PG_PID=$!
until "$PG_BIN/pg_isready" -h 127.0.0.1 -p 25432 -U callgate > /dev/null 2>&1; do sleep 0.1; done
URL="postgres://callgate@127.0.0.1:25432/postgres"
for r in $(seq 1 "$ROUNDS"); do
  for shared in on off; do
    url=$([ "$shared" = on ] && echo "$URL" || echo "")
    out=$(SHARED_URL="$url" BIN=target/release/callgate bash benches/load.sh "$CALLS" "$RATE" 1)
    us=$(sed -n 's/.*(\([0-9]*\) us\/call).*/\1/p' <<< "$out")
    # The calls were decided and let through, not refused for want of the database.
    allowed=$(sed -n 's/^callgate_decisions_total{.*verdict="allowed"} \([0-9]*\)$/\1/p' <<< "$out" | head -1)
    echo "round $r shared=$shared: $us us/call (${allowed:-0} allowed)"
  done
done
