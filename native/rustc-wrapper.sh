#!/usr/bin/env bash
# rustc wrapper (build.rustc-wrapper in .cargo/config.toml). It changes nothing except,
# on Linux and only while rustc compiles the crate `mlx_sys`, the link directives that
# mlx-sys' build script writes for macOS:
#   -l framework=*, -l dylib=objc, -l static=gguflib   dropped (no Apple frameworks; gguflib lives in libmlx.so)
#   -l c++                                             -> stdc++ (libmlx.so is built against libstdc++)
#   -l static=mlx                                      -> dylib=mlx (the prebuilt libmlx.so from the mlx-cpu wheel)
# mlx-sys is pinned (=0.7.0) because this depends on its exact link lines; the doctor
# and the engine tests run MLX, so a mismatch shows up as a failing test, not silently.
set -euo pipefail
rustc=$1; shift
[ "$(uname -s)" = Linux ] || exec "$rustc" "$@"
crate=; prev=
for a in "$@"; do
  if [ "$prev" = --crate-name ]; then crate=$a; break; fi
  prev=$a
done
[ "$crate" = mlx_sys ] || exec "$rustc" "$@"

map_lib() { # prints the replacement, or nothing to drop the directive
  case $1 in
    framework=*|dylib=objc|objc|static=gguflib) ;;
    c++|dylib=c++) echo stdc++ ;;
    static=mlx) echo dylib=mlx ;;
    *) echo "$1" ;;
  esac
}
out=()
while [ $# -gt 0 ]; do
  a=$1; shift
  if [ "$a" = -l ] && [ $# -gt 0 ]; then
    v=$(map_lib "$1"); shift
    [ -n "$v" ] && out+=(-l "$v")
  elif [ "${a:0:2}" = -l ] && [ ${#a} -gt 2 ]; then
    v=$(map_lib "${a:2}")
    [ -n "$v" ] && out+=("-l$v")
  else
    out+=("$a")
  fi
done
exec "$rustc" "${out[@]}"
