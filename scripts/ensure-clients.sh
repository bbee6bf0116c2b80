#!/usr/bin/env bash
# The real clients the gateway tests drive, pinned, idempotent (make test runs it):
#   .tools/clients/   Claude Code and Codex CLI from the npm registry (tests/clients/package*.json)
#   .tools/sdk-venv/  the official openai and anthropic Python SDKs from PyPI (tests/sdk/requirements.txt)
# Nothing is installed outside the repository's git-ignored .tools/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

clients=.tools/clients
if ! cmp -s tests/clients/package-lock.json "$clients/.switchyard-lock" 2>/dev/null \
   || [ ! -x "$clients/node_modules/.bin/claude" ] || [ ! -x "$clients/node_modules/.bin/codex" ]; then
  echo "ensure-clients: installing Claude Code and Codex CLI into $clients" >&2
  rm -rf "$clients"
  mkdir -p "$clients"
  cp tests/clients/package.json tests/clients/package-lock.json "$clients/"
  (cd "$clients" && npm ci --no-audit --no-fund --loglevel=error)
  cp tests/clients/package-lock.json "$clients/.switchyard-lock"
fi

venv=.tools/sdk-venv
if ! cmp -s tests/sdk/requirements.txt "$venv/.switchyard-pins" 2>/dev/null || [ ! -x "$venv/bin/python" ]; then
  echo "ensure-clients: creating $venv (the official openai and anthropic SDKs)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
  cp tests/sdk/requirements.txt "$venv/.switchyard-pins"
fi
