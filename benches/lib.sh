# Shared by the benchmark scripts (source it): the called numbers sipp dials and the plain
# callgate configuration they run.

# need TOOL PACKAGE: stop, naming the Debian package, when TOOL is not installed.
need() { command -v "$1" >/dev/null || { echo "$1 missing: apt-get install -y $2" >&2; exit 1; }; }

# release_bin: BIN, by default the release build (built first; BIN=path measures another).
release_bin() {
  BIN=${BIN:-target/release/callgate}
  [ "$BIN" != target/release/callgate ] || cargo build --release -q
}

# scratch: a scratch directory (WORK) that is removed at exit.
scratch() {
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
}

# uas_work UAS_PORT: a scratch directory (WORK) that is removed at exit, with every job the
# script started and sipp's UAS on UAS_PORT.
uas_work() {
  WORK_UAS=$1
  WORK=$(mktemp -d)
  trap 'kill $(jobs -p) 2>/dev/null || true; pkill -f "sipp -sn uas -i 127.0.0.1 -p $WORK_UAS" || true; rm -rf "$WORK"' EXIT
}

# numbers_csv FILE: sipp's -inf file, 2,000 numbers none of the sample lists holds.
numbers_csv() {
  python3 - "$1" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("SEQUENTIAL\n")
    for i in range(2000):
        f.write(f"415{2000000 + i * 37 % 7999999:07d}\n")
PY
}

# callgate_toml FILE DIR SIP_PORT UPSTREAM_PORT ADMIN_PORT [DATA_DIR]: a configuration on
# loopback whose state and audit log live in DIR/var (lists: the shipped sample data).
callgate_toml() {
  local file=$1 dir=$2 data=${6:-$PWD/config/sample-data}
  mkdir -p "$dir/var"
  cat > "$file" <<TOML
[sip]
listen = "127.0.0.1:$3"
[upstream]
address = "127.0.0.1:$4"
[lists]
data_dir = "$data"
optout_journal = "$dir/var/optouts.jsonl"
consent_journal = "$dir/var/consent.jsonl"
caps_journal = "$dir/var/caps.bin"
emergency_file = "$dir/var/emergency.json"
[audit]
dir = "$dir/var/audit"
[admin]
listen = "127.0.0.1:$5"
[log]
level = "warn"
TOML
}

# behind_uas UAS CG ADMIN: the work directory ($WORK, with its cleanup trap set by the caller)
# gets sipp's UAS on port UAS as the carrier and callgate ($BIN) on CG in front of it, its
# clock at 19:00 UTC today; returns when callgate is ready. Sets PID (callgate's).
behind_uas() {
  local uas=$1 cg=$2 admin=$3
  numbers_csv "$WORK/numbers.csv"
  callgate_toml "$WORK/callgate.toml" "$WORK" "$cg" "$uas" "$admin"
  timeout 300 sipp -sn uas -i 127.0.0.1 -p "$uas" -nostdin -bg > /dev/null 2>&1 || true
  CALLGATE_FAKE_NOW="$(date -u +%Y-%m-%dT19:00:00Z)" "$BIN" run --config "$WORK/callgate.toml" 2> "$WORK/log" &
  PID=$!
  wait_ready "$admin"
}

# wait_ready ADMIN_PORT: until callgate's /readyz answers (10 s at most).
wait_ready() {
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$1/readyz" > /dev/null 2>&1 && break; sleep 0.1; done
}

# null_relay_bin: builds benches/null_relay.rs and prints its path.
null_relay_bin() {
  cargo bench --bench null_relay --no-run --message-format=json 2>/dev/null | python3 -c '
import sys, json
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "null_relay":
        print(m["executable"])'
}
