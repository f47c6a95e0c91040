#!/usr/bin/env bash
# Installs what the fuzz targets need: a nightly toolchain and cargo-fuzz. Safe to run again.
set -euo pipefail
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "installing the nightly toolchain (cargo-fuzz needs it)"
  rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
echo "fuzzing ready: $(rustup run nightly rustc --version), $(cargo fuzz --version)"
