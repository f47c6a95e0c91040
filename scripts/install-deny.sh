#!/usr/bin/env bash
# Installs cargo-deny (from crates.io) for `make lint`'s licence, ban and source checks
# (deny.toml). Safe to run again; built once, then on the PATH.
set -euo pipefail
if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "installing cargo-deny (built from source, a few minutes the first time)"
  cargo install cargo-deny --locked
fi
echo "cargo-deny ready: $(cargo deny --version)"
