#!/usr/bin/env bash
# Installs cargo-fuzz (from crates.io) for the fuzz targets. Safe to run again. The targets build
# with the machine's stable toolchain (see `make fuzz`), so no nightly toolchain is needed.
set -euo pipefail
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
echo "fuzzing ready: $(cargo fuzz --version)"
