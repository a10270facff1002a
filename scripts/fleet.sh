#!/usr/bin/env bash
# The `fleet` CLI as operators run it (`npm run fleet -- <command>`, or this script straight, e.g.
# `alias fleet="$PWD/scripts/fleet.sh"`, which spares npm's own start-up). It runs the compiled
# JavaScript in dist/ and compiles first only when a TypeScript source is newer, under the same
# build lock the fleet takes (.fleet/locks/build.lock), so concurrent commands compile once.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=node-env.sh
. "$root/scripts/node-env.sh"
main="$root/dist/src/cli/main.js"
stale() {
  [ ! -f "$main" ] || [ -n "$(find "$root/index.ts" "$root/src" "$root/components" "$root/policies/src" -name '*.ts' -newer "$main" -print -quit)" ]
}
# the project's packages and the policy pack's (a checkout from before the pack has none of its own)
if [ ! -d "$root/node_modules" ] || [ ! -d "$root/policies/node_modules" ]; then
  bash "$root/scripts/ensure-node-modules.sh"
fi
if stale; then
  mkdir -p "$root/.fleet/locks"
  (
    flock 9
    if stale; then
      echo "[fleet] compiling (tsc) ..." >&2
      node "$root/node_modules/typescript/bin/tsc" -p "$root"
      touch "$main" "$root/dist/index.js"
    fi
  ) 9>"$root/.fleet/locks/build.lock"
fi
# V8's code cache for the CLI's own modules (and, through fleet, for the Pulumi program's)
export NODE_COMPILE_CACHE="${NODE_COMPILE_CACHE:-$root/.fleet/node-compile-cache}"
exec node "$main" "$@"
