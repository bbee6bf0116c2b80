#!/usr/bin/env bash
# Installs the UI's npm dependencies at the locked versions, when missing or stale.
# `npm install` rather than `npm ci`: registries that serve only some platforms'
# optional packages (e.g. @tauri-apps/cli-darwin-*) leave them out of the lockfile,
# which `npm ci` then rejects as out of sync; `npm install` installs the locked
# versions of everything else and leaves the lockfile as it is.
set -euo pipefail
cd "$(dirname "$0")/../ui"
stamp=node_modules/.switchyard-lock
if [ -f "$stamp" ] && cmp -s package-lock.json "$stamp"; then exit 0; fi
npm install --no-audit --no-fund --loglevel=error
cp package-lock.json "$stamp"
