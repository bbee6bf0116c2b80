#!/usr/bin/env bash
# Fetches the test model (SmolLM2-135M-Instruct, GGUF) into .fixtures/ (idempotent).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/tests/fixtures/smollm2/fetch.sh" "$root/.fixtures" >/dev/null
