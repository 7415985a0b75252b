#!/usr/bin/env bash
# Run every cargo-fuzz target for SECONDS each (default 60) on its corpus in fuzz/corpus/, and
# print executions and findings. New inputs the fuzzer keeps are added to the corpus (commit
# the useful ones; tests/fuzz_corpora.rs replays them on stable). A crash is saved under
# fuzz/artifacts/<target>/ and makes the script fail.
#
# cargo-fuzz needs nightly features; the machine has one stable toolchain, so
# RUSTC_BOOTSTRAP=1 unlocks them. cargo-fuzz is installed when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== cargo-fuzz not found: installing it"
  cargo install --locked cargo-fuzz
fi
cargo fuzz build -O
status=0
for t in sip_message list_file snapshot_body config_text call_flow; do
  log=$(mktemp)
  if cargo fuzz run -O "$t" "fuzz/corpus/$t" -- -max_total_time="$SECS" -rss_limit_mb=4096 >"$log" 2>&1; then
    echo "$t: $(grep -E '^Done' "$log" | tail -1) ($(grep -E 'DONE' "$log" | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' | tail -1)); no crash"
  else
    status=1
    echo "$t: FINDING"; grep -E 'panicked|SUMMARY|Test unit written' "$log" | head -5
  fi
  rm -f "$log"
done
exit $status
