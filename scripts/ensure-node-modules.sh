#!/usr/bin/env bash
# Installs the pinned npm packages when node_modules is missing, older than the lockfile, or was
# installed by another Node.js major version (native addons are built for one ABI).
# Run it with the project's Node.js on PATH (scripts/node-env.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
abi="$(node -p 'process.versions.modules')"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ] ||
  [ "$(cat node_modules/.hf-node-abi 2>/dev/null)" != "$abi" ]; then
  printf '[setup] npm ci (node %s)\n' "$(node --version)" >&2
  npm ci --no-audit --no-fund --loglevel=error
  printf '%s\n' "$abi" >node_modules/.hf-node-abi
fi
