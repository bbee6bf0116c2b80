#!/usr/bin/env bash
# Builds tauri-driver (the WebDriver bridge for the end-to-end test) into .tools/cargo
# if it is not there yet. Linux only (WebKitWebDriver); idempotent.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/.tools/cargo/bin/tauri-driver
[ -x "$bin" ] && exit 0
echo "ensure-tauri-driver: building tauri-driver (about 2 minutes)" >&2
# Our .cargo/config.toml (rustc wrapper, MLX env) is for this repository only.
cd /tmp && env -u RUSTC_WRAPPER CARGO_TARGET_DIR="$root/.tools/cargo-target" \
  cargo install --quiet --locked --root "$root/.tools/cargo" tauri-driver --version '^2'
rm -rf "$root/.tools/cargo-target"
