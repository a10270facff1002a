#!/usr/bin/env bash
# `npm run bench`: sets up what it needs (Node.js 24, npm packages, Docker engine and bases, the
# Pulumi toolchain), then prints the benchmarks as tables: fleet operations next to their floors
# (bench/fleet.ts), backups (bench/backup.ts), the watcher (bench/watch.ts), the log collector (bench/logs.ts), then the image sizes: the base, a single-stage build, the multi-stage runtime on the base and the shell-less one (bench/image.ts), then what the policy pack costs a preview (bench/policy.ts).
# Nothing in it is a test; see docs/performance.md for what each figure means.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=prepare.sh
. scripts/prepare.sh
# `npm run bench -- watch backup`: only those (bench/<name>.ts)
if [ $# -gt 0 ]; then
  for name in "$@"; do npx tsx "bench/$name.ts"; done
  exit 0
fi
npx tsx bench/fleet.ts
npx tsx bench/backup.ts
npx tsx bench/watch.ts
npx tsx bench/logs.ts
npx tsx bench/image.ts
npx tsx bench/policy.ts
npx tsx bench/sandbox.ts
