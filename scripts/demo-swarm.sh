#!/usr/bin/env bash
# `npm run demo:swarm`: on a fresh machine, sets up everything `npm run demo` does, then a cluster of
# three Docker engines on this machine, each in a network namespace of its own, with Swarm across
# them and a registry on the manager (scripts/swarm-cluster.sh). Deploys the environment 'swarm'
# (staging tier, target: swarm) and three customers, one per node, requests each over HTTPS through
# the edge proxy, and audits every node. A second run changes nothing.
# Remove it all with: bash scripts/swarm-cluster.sh down   (and rm Pulumi.swarm*.yaml)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=prepare.sh
. scripts/prepare.sh
cluster_json=$(bash scripts/swarm-cluster.sh up)
node dist/src/cli/main.js swarm demo --cluster "$cluster_json"
