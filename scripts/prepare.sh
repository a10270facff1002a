# Sourced (from the repository root) by scripts/demo.sh and scripts/bench.sh: everything a command
# on the real engines needs, each step doing nothing when it is done already: Node.js 24 first on
# PATH, the npm packages, the Docker engine with its bases, the Pulumi toolchain, and the compiled
# program (tsc).
# shellcheck source=node-env.sh
. scripts/node-env.sh
bash scripts/ensure-node-modules.sh
bash scripts/setup-engine.sh
bash toolchain/build.sh >/dev/null
npx tsc -p .
