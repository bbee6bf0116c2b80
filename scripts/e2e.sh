#!/usr/bin/env bash
# The end-to-end test: the real app (APP, built with embedded UI assets) in Xvfb with a
# private D-Bus session (single-instance and tray use it), driven over WebDriver.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
app=${APP:-$root/target/desktop/switchyard}
[ -x "$app" ] || { echo "e2e: $app is missing; build it with: make desktop" >&2; exit 1; }
mkdir -p "$root/target/e2e"
cd "$root"
exec dbus-run-session -- xvfb-run -a -s '-screen 0 1280x1024x24' \
  node ui/e2e/run.mjs --app "$app" --driver "$root/.tools/cargo/bin/tauri-driver" --out "$root/target/e2e"
