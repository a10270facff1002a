#!/usr/bin/env bash
# Installs the pinned npm packages when node_modules is missing or older than the lockfile.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  printf '[setup] npm ci\n' >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
