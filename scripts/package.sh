#!/usr/bin/env bash
# Build the Debian package: target/debian/callgate_<version>-1_<arch>.deb (cargo-deb, installed
# when missing). What it holds is declared in Cargo.toml ([package.metadata.deb]); this script
# first writes the generated parts into target/package/:
#   - the packaged configuration: config/callgate.toml with its paths moved to /etc/callgate
#     (rules, holidays) and /var/lib/callgate (lists, journals, audit log), so the two files
#     cannot drift apart;
#   - bash, zsh and fish completions and the man pages, from the binary's own CLI definitions.
# Usage: bash scripts/package.sh [--profile release|dev] [--no-build]
#   dev: quicker, for the tests; --no-build: package the binary already in target/.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
build=yes
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --no-build) build=no; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
case "$profile" in
  release) dir=release ;;
  dev) dir=debug ;;
  *) echo "--profile: release or dev" >&2; exit 2 ;;
esac

if ! command -v cargo-deb >/dev/null 2>&1; then
  echo "== installing cargo-deb (cargo install cargo-deb --locked)"
  cargo install cargo-deb --version 3.8.0 --locked
fi

if [ "$build" = yes ]; then
  cargo build --locked --profile "$profile" --bin callgate
fi
bin="target/$dir/callgate"
out=target/package
rm -rf "$out"
mkdir -p "$out/completions" "$out/man"

{
  echo "# The Debian package's configuration (/etc/callgate/callgate.toml): the repository's"
  echo "# config/callgate.toml with its paths moved to /etc/callgate and /var/lib/callgate."
  echo "# After an edit: \`callgate config check --config /etc/callgate/callgate.toml\`, then"
  echo "# \`systemctl reload callgate\` (which runs the same check first)."
  echo "#"
  sed -e 's#^data_dir = "config/sample-data"#data_dir = "/var/lib/callgate/lists"#' \
      -e 's#= "config/#= "/etc/callgate/#' \
      -e 's#= "var/#= "/var/lib/callgate/#' \
      config/callgate.toml
} > "$out/callgate.toml"
if grep -nE '= "(config|var)/' "$out/callgate.toml"; then
  echo "FATAL: a relative path is left in the packaged configuration (above)" >&2
  exit 1
fi

"$bin" completions bash > "$out/completions/callgate.bash"
"$bin" completions zsh > "$out/completions/_callgate"
"$bin" completions fish > "$out/completions/callgate.fish"
"$bin" man --out "$out/man" >/dev/null

cargo deb --no-build --profile "$profile" --output target/debian/
