#!/usr/bin/env bash
# `npm test`: everything a fresh machine needs, then every test.
#   1. Node.js 24 (scripts/ensure-node.sh: from the npm registry when the machine's node is older)
#      and the npm packages (npm ci when node_modules is missing or stale)
#   2. the Docker engine, base images and wheelhouse (scripts/setup-engine.sh)
#   3. the Pulumi toolchain: official CLI, language host and plugins (toolchain/build.sh; built once,
#      then cached; with progress lines), verified by toolchain/check.sh (go version -m module paths)
#   4. type check (tsc, strict) and build
#   5. unit tests (pure functions and Pulumi mocks), real Docker engine tests, then the lifecycle
#      tests on the real Pulumi engine, the swarm cluster (three engines in network namespaces), and
#      the reliability tests (they restart the engine)
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '\n[test] %s\n' "$*"; }

# shellcheck source=node-env.sh
. scripts/node-env.sh
log "Node.js $(node --version) ($(command -v node))"
bash scripts/ensure-node-modules.sh
log "engine"
bash scripts/setup-engine.sh
log "Pulumi toolchain (built from official sources once, then cached; toolchain/README.md)"
bash toolchain/build.sh >/dev/null
bash toolchain/check.sh
log "type check and build"
npx tsc -p .
log "tests"
node --import tsx --test --test-concurrency=1 test/unit/*.test.ts test/engine/*.test.ts test/pulumi/*.test.ts test/webhooks/*.test.ts test/swarm/*.test.ts test/reliability/*.test.ts
