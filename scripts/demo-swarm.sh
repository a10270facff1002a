#!/usr/bin/env bash
# `npm run demo:swarm`: on a fresh machine, sets up everything `npm run demo` does, then a cluster of
# four Docker engines on this machine (one a gVisor sandbox node), each in a network namespace of its
# own, with Swarm across them and a registry on the manager (scripts/swarm-cluster.sh). Deploys the
# environment 'swarm' (staging tier, target: swarm) and three customers, one per ordinary node
# (the sandbox node takes only sandboxed plans), requests each over HTTPS through
# the edge proxy, and audits every node. A second run changes nothing.
# Remove it all with: bash scripts/swarm-cluster.sh down   (the next demo:swarm starts over)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=prepare.sh
. scripts/prepare.sh
cluster_json=$(bash scripts/swarm-cluster.sh up)
manager=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).manager)' "$cluster_json")
cluster_id=$(DOCKER_HOST=$manager docker info --format '{{.Swarm.Cluster.ID}}')
# the demo's stacks describe one cluster: when it was taken down and made anew, they describe
# nothing that exists any more (its services, networks and volumes went with it), so they go too
seen=.fleet/swarm-demo-cluster
if [ -f "$seen" ] && [ "$(cat "$seen")" != "$cluster_id" ]; then
  echo "[demo:swarm] the cluster was made anew: forgetting the demo's stacks of the old one" >&2
  for d in stacks history locks backups; do rm -rf .fleet/state/.pulumi/$d/hardened-fleet/swarm .fleet/state/.pulumi/$d/hardened-fleet/swarm[.-]*; done
  rm -f Pulumi.swarm.yaml Pulumi.swarm-*.yaml
fi
mkdir -p .fleet && echo "$cluster_id" >"$seen"
node dist/demo/swarm.js demo --cluster "$cluster_json"
