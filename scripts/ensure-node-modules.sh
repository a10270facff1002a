#!/usr/bin/env bash
# Installs the pinned npm packages when node_modules is missing, older than the lockfile, or was
# installed by another Node.js major version (native addons are built for one ABI): the project's,
# then the policy pack's (policies/, a package of its own), which it then builds.
# Run it with the project's Node.js on PATH (scripts/node-env.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
abi="$(node -p 'process.versions.modules')"
install() {
  local dir=$1
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ] ||
    [ "$(cat "$dir/node_modules/.hf-node-abi" 2>/dev/null)" != "$abi" ]; then
    printf '[setup] npm ci in %s (node %s)\n' "$dir" "$(node --version)" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    printf '%s\n' "$abi" >"$dir/node_modules/.hf-node-abi"
  fi
}
install .
install policies
# the pack's JavaScript, when missing or older than a source (Pulumi runs policies/dist/index.js)
if [ ! -f policies/dist/index.js ] || [ -n "$(find policies/src -newer policies/dist/index.js -name '*.ts' | head -1)" ]; then
  printf '[setup] building the policy pack (policies/)\n' >&2
  (cd policies && node node_modules/typescript/bin/tsc -p . && touch dist/index.js)
fi
