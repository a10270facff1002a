#!/usr/bin/env bash
# `npm run demo`: on a fresh machine, sets up everything (Node.js 24, npm packages, Docker engine,
# base images, Pulumi toolchain), deploys the staging environment stack and two demo customers with
# `pulumi up`, then prints each customer's URL and the audit table. A second run changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=prepare.sh
. scripts/prepare.sh
node dist/demo/docker.js
