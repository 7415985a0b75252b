#!/usr/bin/env bash
# Install what the tests need (sipp; stunnel, which gives Debian's TLS-less sipp its TLS hop;
# baresip, a real SIP phone as the dialer; Kamailio for its recipe; promtool (Debian's prometheus) for the alert rules
# and dashboard; Chromium and chromedriver, the browser the console's tests drive; PostgreSQL, the database several instances share (tests start their own servers); cargo-deb for the Debian package, which tests/package.rs builds and installs
# with dpkg into a scratch root; the rustfmt and clippy components), then check formatting and lints and run every test. This is the README's test command and exactly what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v sipp >/dev/null 2>&1 || missing+=(sip-tester)
command -v stunnel4 >/dev/null 2>&1 || missing+=(stunnel4)
command -v baresip >/dev/null 2>&1 || missing+=(baresip-core)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v kamailio >/dev/null 2>&1 || missing+=(kamailio)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql-15)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
command -v sipp >/dev/null 2>&1 || { echo "FATAL: sipp is still missing; the end-to-end tests cannot run" >&2; exit 1; }
command -v stunnel4 >/dev/null 2>&1 || { echo "FATAL: stunnel4 is still missing; the SIP-over-TLS end-to-end test cannot run" >&2; exit 1; }
command -v baresip >/dev/null 2>&1 || { echo "FATAL: baresip is still missing; the real-phone call-record test cannot run" >&2; exit 1; }
command -v promtool >/dev/null 2>&1 || { echo "FATAL: promtool is still missing; the alert-rule tests cannot run" >&2; exit 1; }
command -v kamailio >/dev/null 2>&1 || { echo "FATAL: kamailio is still missing; the Kamailio recipe tests cannot run" >&2; exit 1; }
command -v chromium >/dev/null 2>&1 || { echo "FATAL: chromium is still missing; the console's browser tests cannot run" >&2; exit 1; }
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "FATAL: PostgreSQL (initdb) is still missing; the shared-state tests cannot run" >&2; exit 1; }
command -v chromedriver >/dev/null 2>&1 || { echo "FATAL: chromedriver is still missing; the console's browser tests cannot run" >&2; exit 1; }
if ! command -v mdbook >/dev/null 2>&1; then
  echo "== installing mdbook (the book in docs/ is built by the tests)"
  cargo install mdbook --version 0.4.52 --locked
fi
if ! command -v cargo-deb >/dev/null 2>&1; then
  echo "== installing cargo-deb (the Debian package test builds a .deb)"
  cargo install cargo-deb --version 3.8.0 --locked
fi

# The habits: formatting and lints are part of the tests. rustup adds the components when
# this toolchain lacks them.
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    echo "== installing the $component component"
    rustup component add "$component"
  fi
done
echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --locked --all-targets -- -D warnings

echo "== cargo test (unit, in-process proxy, admin, RFC 4475 corpus, sipp end-to-end)"
cargo test --locked --all-targets --no-fail-fast
echo "== the book (mdbook build docs; its links and generated pages are checked by tests/docs.rs)"
mdbook build docs
echo "== benches compile"
cargo bench --locked --no-run -q
echo "== fuzz smoke run (every target, 10 s; the corpora also ran above as tests/fuzz_corpora.rs)"
bash scripts/fuzz.sh 10
