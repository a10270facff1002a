#!/usr/bin/env bash
# `npm test`: everything a fresh machine needs, then every test.
#   1. Node.js 24 (scripts/ensure-node.sh: from the npm registry when the machine's node is older)
#      and the npm packages (npm ci when node_modules is missing or stale)
#   2. the Docker engine, base images and wheelhouse (scripts/setup-engine.sh)
#   3. the Pulumi toolchain: official CLI, language host and plugins (toolchain/build.sh; built once,
#      then cached; with progress lines), verified by toolchain/check.sh (go version -m module paths)
#   4. type check (tsc, strict) and build
#   5. the tests, in two lanes side by side (most of their time is spent waiting on health checks
#      and engines; a third lane was tried on 2026-12-07 and left both cores busy all the time, with
#      suites timing out: docs/performance.md), then the one suite that restarts the engine alone:
#        host lane:  unit tests (pure functions, Pulumi mocks), real Docker engine tests, then the
#                    lifecycle tests on the real Pulumi engine, then the supply chain (trivy,
#                    signatures checked against cosign, prod's gate, fleet under the policy pack),
#                    then the log collector and `fleet logs`, then the status page in a real browser
#                    (Debian's chromium, playwright-core)
#        swarm lane: the swarm cluster (four engines of its own in network namespaces), then the
#                    webhook server on the real engines, then backups (a backup host in a network
#                    namespace of their own), then the watcher (alert sinks, Prometheus rules, and
#                    `fleet watch` against faults on the real engines with a real Prometheus), then
#                    the policy pack through the real pulumi CLI on a program of its own, then
#                    `fleet usage` against the engine's own stats
#      (node's runner takes each lane's files in alphabetical order of their paths)
#        then:       the reliability tests (they stop and start the host's engine)
#      The suites of the two lanes share no names, ports or state: each works in its own project
#      copy with its own environment names, customers, edge names and ports.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '\n[test] %s\n' "$*"; }

# shellcheck source=node-env.sh
. scripts/node-env.sh
log "Node.js $(node --version) ($(command -v node))"
bash scripts/ensure-node-modules.sh
log "engine"
bash scripts/setup-engine.sh
log "Prometheus (Debian's package: the watcher's scrape config and rules are tested against it)"
bash scripts/ensure-prometheus.sh
log "Chromium (Debian's package: the status page is tested in a real browser)"
bash scripts/ensure-chromium.sh >/dev/null
log "cosign (a test tool only: fleet's signatures are checked against the real cosign; scripts/ensure-cosign.sh)"
bash scripts/ensure-cosign.sh >/dev/null
log "Pulumi toolchain (built from official sources once, then cached; toolchain/README.md)"
bash toolchain/build.sh >/dev/null
bash toolchain/check.sh
log "type check and build"
npx tsc -p .
log "tests (two lanes side by side, then the engine restart; each line says its lane)"
# Each lane's output goes to the terminal and to .fleet/test-logs/<lane>.log; a lane that fails has
# its failing tests (with their errors) printed again at the very end, where a CI log's tail shows it.
# V8's code cache, one for every node process of the run (the runner, each CLI process, and through
# fleet the Pulumi programs, policy packs and dynamic providers of every project copy): the SDKs'
# modules are compiled once, not once per project copy (src/pulumi/workspace.ts passes it on)
export NODE_COMPILE_CACHE="$PWD/.fleet/node-compile-cache"
logs=.fleet/test-logs
rm -rf "$logs" && mkdir -p "$logs"
lane() {
  local name=$1; shift
  node --import tsx --test --test-concurrency=1 "$@" 2>&1 | tee "$logs/$name.log" | sed -u "s/^/[$name] /"
  return "${PIPESTATUS[0]}"
}
failures() {
  # node's spec reporter ends a failed run with a "failing tests:" section; without one (a crash),
  # the lane's last lines.
  local file="$logs/$1.log"
  if grep -q 'failing tests:' "$file"; then
    sed -n '/failing tests:/,$p' "$file" | head -n 400
  else
    tail -n 80 "$file"
  fi | sed "s/^/[$1] /"
}
shopt -s nullglob
host_files=(test/unit/*.test.ts test/engine/*.test.ts test/pulumi/*.test.ts test/supplyChain/*.test.ts test/logs/*.test.ts
  test/statusPage/*.test.ts)
swarm_files=(test/swarm/*.test.ts test/webhooks/*.test.ts test/backup/*.test.ts test/watch/*.test.ts test/policy/*.test.ts
  test/usage/*.test.ts)
reliability_files=(test/reliability/*.test.ts)
# every suite in a lane: a new directory of tests has to be given one
missing=$(comm -23 <(find test -name '*.test.ts' -not -path 'test/support/*' | sort) \
  <(printf '%s\n' "${host_files[@]}" "${swarm_files[@]}" "${reliability_files[@]}" | sort -u))
if [ -n "$missing" ]; then
  echo "[test] these test files are in no lane of scripts/test.sh; add each to one:" >&2
  echo "$missing" >&2
  exit 1
fi
lane host "${host_files[@]}" &
host=$!
lane swarm "${swarm_files[@]}" &
swarm=$!
failed=()
wait "$host" || failed+=(host)
wait "$swarm" || failed+=(swarm)
lane reliability "${reliability_files[@]}" || failed+=(reliability)
if [ ${#failed[@]} -gt 0 ]; then
  for name in "${failed[@]}"; do
    log "the failures of lane $name (its whole output: $logs/$name.log)"
    failures "$name"
  done
  log "FAILED in: ${failed[*]} (search the output for 'not ok' or '✖' with that lane's prefix)"
  exit 1
fi
log "all tests passed"
