#!/usr/bin/env bash
# The Linux package of the desktop app (a .deb), made by the Tauri bundler from
# tauri.conf.json (binary, desktop entry, icons, and the MLX library with its BLAS in
# /usr/lib/switchyard). `make bundle` makes the release package; `make test` runs
# `scripts/bundle.sh --debug --check`: the same packaging of the debug build, installed
# into a scratch root with `dpkg -x` and checked there (files, desktop entry, icons, and
# that the installed binary runs on the installed libraries).
# The UI must be built first (make ui-build): its dist/ is embedded in the binary.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
profile=release flags=() check=
for a in "$@"; do
  case $a in
    --debug) profile=debug flags+=(--debug) ;;
    --check) check=1 ;;
    *) echo "usage: scripts/bundle.sh [--debug] [--check]" >&2; exit 2 ;;
  esac
done
[ -f ui/dist/index.html ] || { echo "bundle: ui/dist is missing; run make ui-build" >&2; exit 1; }
# The UI was built by make; the bundler must not rebuild it behind make's back.
ui/node_modules/.bin/tauri build "${flags[@]}" --bundles deb --ci --config '{"build":{"beforeBuildCommand":""}}'
version=$(python3 -c "import json; print(json.load(open('tauri.conf.json'))['version'])")
deb=${CARGO_TARGET_DIR:-$root/target}/$profile/bundle/deb/Switchyard_${version}_amd64.deb
[ -f "$deb" ] || { echo "bundle: $deb was not made" >&2; exit 1; }
echo "bundle: $deb"
[ -n "$check" ] || exit 0

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
fail() { echo "bundle check FAILED: $*" >&2; exit 1; }
dpkg-deb --field "$deb" Package | grep -qx switchyard || fail "the package is not named switchyard"
dpkg-deb --field "$deb" Depends | grep -q libwebkit2gtk-4.1-0 || fail "the package does not depend on WebKitGTK"
dpkg -x "$deb" "$scratch/root"
r=$scratch/root
[ -x "$r/usr/bin/switchyard" ] || fail "no executable /usr/bin/switchyard"
desktop=$r/usr/share/applications/Switchyard.desktop
[ -f "$desktop" ] || fail "no desktop entry"
grep -qx 'Exec=switchyard' "$desktop" || fail "the desktop entry does not start switchyard"
grep -qx 'Type=Application' "$desktop" || fail "the desktop entry is not an application"
icon=$(sed -n 's/^Icon=//p' "$desktop")
for size in 32x32 128x128; do
  f=$r/usr/share/icons/hicolor/$size/apps/$icon.png
  [ -f "$f" ] || fail "no $size icon named $icon"
  [ "$(head -c 8 "$f" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "$f is not a PNG"
done
[ -f "$r/usr/lib/switchyard/mlx/lib/libmlx.so" ] || fail "libmlx.so is not installed"
ls "$r"/usr/lib/switchyard/mlx_cpu.libs/libblas-*.so* >/dev/null 2>&1 || fail "MLX's BLAS is not installed"
# The installed binary loads the installed libmlx (its RPATH's $ORIGIN entry comes first)…
loaded=$(ldd "$r/usr/bin/switchyard" | awk '$1 == "libmlx.so" {print $3}')
[ -n "$loaded" ] && [ "$(realpath "$loaded")" = "$(realpath "$r/usr/lib/switchyard/mlx/lib/libmlx.so")" ] \
  || fail "the installed binary loads libmlx.so from ${loaded:-nowhere}, not from the package"
ldd "$r/usr/bin/switchyard" | grep -q "not found" && fail "unresolved libraries: $(ldd "$r/usr/bin/switchyard" | grep 'not found')"
# …and runs: doctor reports the MLX device through it.
data=$scratch/data
out=$("$r/usr/bin/switchyard" --json --vault file --data-dir "$data" doctor 2>/dev/null || true)
python3 - "$out" <<'PY' || fail "the installed binary's doctor did not report a working MLX"
import json, sys
doc = json.loads(sys.argv[1])
mlx = next(c for c in doc["checks"] if c["name"] == "mlx")
assert mlx["status"] == "ok", mlx
PY
echo "bundle check: ok — $(basename "$deb") installs /usr/bin/switchyard, its desktop entry, icons and libmlx; the installed binary runs on them"
