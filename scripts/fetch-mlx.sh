#!/usr/bin/env bash
# Unpacks the prebuilt CPU build of MLX (libmlx.so, headers, CMake config, its BLAS)
# from the PyPI `mlx-cpu` wheel into .mlx/ (git-ignored). Linux only; idempotent.
# MLX_VERSION must equal the MLX tag that mlx-sys' bundled mlx-c targets (mlx-sys 0.7.0 -> 0.32.2).
set -euo pipefail
[ "$(uname -s)" = Linux ] || exit 0
MLX_VERSION=${MLX_VERSION:-0.32.2}
root=$(cd "$(dirname "$0")/.." && pwd)
dest=$root/.mlx
stamp=$dest/.version
if [ -f "$dest/mlx/lib/libmlx.so" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$MLX_VERSION" ]; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch-mlx: downloading mlx-cpu==$MLX_VERSION from PyPI" >&2
python3 -m pip download --quiet --no-deps --only-binary=:all: "mlx-cpu==$MLX_VERSION" -d "$tmp"
rm -rf "$dest.partial"
mkdir -p "$dest.partial"
python3 -m zipfile -e "$tmp"/mlx_cpu-*.whl "$dest.partial"
echo "$MLX_VERSION" >"$dest.partial/.version"
rm -rf "$dest"
mv "$dest.partial" "$dest"
echo "fetch-mlx: MLX $MLX_VERSION unpacked into $dest" >&2
