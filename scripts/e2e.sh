#!/usr/bin/env bash
# The end-to-end test: the real app (APP, built with embedded UI assets) in Xvfb with a
# private D-Bus session (single-instance and tray use it), driven over WebDriver.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
app=${APP:-$root/target/desktop/switchyard}
[ -x "$app" ] || { echo "e2e: $app is missing; build it with: make desktop" >&2; exit 1; }
# Screenshots of this run only (a stale one must not pass for current).
rm -rf "$root/target/e2e" && mkdir -p "$root/target/e2e"
cd "$root"
dbus-run-session -- xvfb-run -a -s '-screen 0 1280x1024x24' \
  node ui/e2e/run.mjs --app "$app" --driver "$root/.tools/cargo/bin/tauri-driver" --out "$root/target/e2e"

# SWITCHYARD_UPDATE_SCREENSHOTS=1: the run's pictures of every page and of the tray menu
# become the documentation's (docs/screenshots/, linked from the README and the guide).
if [ "${SWITCHYARD_UPDATE_SCREENSHOTS:-}" = 1 ]; then
  mkdir -p docs/screenshots
  for f in dashboard dashboard-stopped dashboard-dark dashboard-dark-ja models pool-loaded providers \
           routing routing-conflict clients security security-backup-preview tray-menu tray-menu-stopped; do
    cp "target/e2e/$f.png" "docs/screenshots/$f.png"
  done
  echo "e2e: docs/screenshots/ updated"
fi
