#!/usr/bin/env bash
# Installs the system packages Switchyard needs to build, test and run, if missing.
# Debian/Ubuntu: apt packages (webkit for the window, Xvfb + WebKitWebDriver for the
# end-to-end test, with a system tray, pointer and screen capture for the tray menu's
# test; cmake/clang for mlx-sys, keyring backends, a Japanese font for the window's
# Japanese text). macOS: Xcode command line tools, cmake and node via
# Homebrew. Idempotent: installs nothing when all is there.
set -euo pipefail

DEBIAN_PACKAGES=(
  build-essential pkg-config file curl ca-certificates
  libwebkit2gtk-4.1-dev libxdo-dev libssl-dev libayatana-appindicator3-dev librsvg2-dev
  libdbus-1-dev webkit2gtk-driver xvfb xauth dbus dbus-x11 gnome-keyring keyutils
  cmake libclang-dev clang python3-pip python3-venv nodejs npm
  fonts-ipafont-gothic trayer xdotool imagemagick
)

if [ "$(uname -s)" = Darwin ]; then
  xcode-select -p >/dev/null 2>&1 || { echo "install-system-deps: run 'xcode-select --install' first" >&2; exit 1; }
  missing=()
  command -v cmake >/dev/null || missing+=(cmake)
  command -v node >/dev/null || missing+=(node)
  if [ ${#missing[@]} -gt 0 ]; then
    command -v brew >/dev/null || { echo "install-system-deps: need Homebrew to install ${missing[*]}" >&2; exit 1; }
    brew install "${missing[@]}"
  fi
  command -v cargo >/dev/null || { echo "install-system-deps: install Rust from https://rustup.rs" >&2; exit 1; }
  exit 0
fi

command -v dpkg-query >/dev/null || { echo "install-system-deps: not a Debian system; install the equivalents of: ${DEBIAN_PACKAGES[*]}" >&2; exit 1; }
missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  # A machine may already have node/npm from elsewhere (nvm, NodeSource): that is fine.
  case $p in nodejs) command -v node >/dev/null && continue ;; npm) command -v npm >/dev/null && continue ;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-system-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "install-system-deps: installing ${missing[*]}" >&2
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
command -v cargo >/dev/null || { echo "install-system-deps: install Rust from https://rustup.rs" >&2; exit 1; }
