#!/usr/bin/env bash
# Installs the UI's npm dependencies exactly as locked, when they are missing or stale.
set -euo pipefail
cd "$(dirname "$0")/../ui"
stamp=node_modules/.switchyard-lock
if [ -f "$stamp" ] && cmp -s package-lock.json "$stamp"; then exit 0; fi
npm ci --no-audit --no-fund --loglevel=error
cp package-lock.json "$stamp"
