#!/usr/bin/env bash
# Install what the tests need (sipp; stunnel, which gives Debian's TLS-less sipp its TLS hop),
# then run every test. This is the README's test command and exactly what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v sipp >/dev/null 2>&1 || missing+=(sip-tester)
command -v stunnel4 >/dev/null 2>&1 || missing+=(stunnel4)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
command -v sipp >/dev/null 2>&1 || { echo "FATAL: sipp is still missing; the end-to-end tests cannot run" >&2; exit 1; }
command -v stunnel4 >/dev/null 2>&1 || { echo "FATAL: stunnel4 is still missing; the SIP-over-TLS end-to-end test cannot run" >&2; exit 1; }

echo "== cargo test (unit, in-process proxy, admin, RFC 4475 corpus, sipp end-to-end)"
cargo test --locked --all-targets --no-fail-fast
echo "== benches compile"
cargo bench --locked --no-run -q
echo "== fuzz smoke run (every target, 10 s; the corpora also ran above as tests/fuzz_corpora.rs)"
bash scripts/fuzz.sh 10
