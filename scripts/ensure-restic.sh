#!/usr/bin/env bash
# Builds restic and rest-server (the versions in scripts/restic-versions.env) from the Go module
# proxy, static (CGO_ENABLED=0, -trimpath), into
#   ${HARDENED_FLEET_CACHE:-~/.cache/hardened-fleet}/restic/<RESTIC_VERSION>/bin/{restic,rest-server}
# restic goes into the backup image (scripts/setup-engine.sh); rest-server serves the tests' backup
# host (test/support/backupHost.ts). Progress on stderr; last stdout line: the bin directory.
# Nothing to do when both binaries are there and `go version -m` shows the pinned module versions.
# Cold (empty Go module and build caches): about 1.5 minutes on two cores, most of it restic's compile.
#
# Why not Debian's package: bookworm has restic 0.14.0 and no rest-server. The jobs need
#   - RESTIC_REST_USERNAME/RESTIC_REST_PASSWORD (0.16.1): REST credentials in the environment, not
#     in the repository URL (which shows in the job's arguments and in `docker inspect`);
#   - `restore --delete`, `--overwrite`, `--dry-run` (0.17.0) for restores into a used volume;
#   - a Go toolchain that still gets security fixes (bookworm's restic is built with Go 1.19).
# A static binary also runs on the minbase backup base without any library from Debian.
#
# Environment: HARDENED_FLEET_CACHE; GO (default: go on PATH, else /usr/local/go/bin/go);
# GOPROXY, GOMODCACHE, GOCACHE are passed through to go.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=restic-versions.env
. "$here/scripts/restic-versions.env"
# shellcheck source=go-tools.sh
. "$here/scripts/go-tools.sh"
go_tools_init restic "$RESTIC_VERSION"
GO_TOOLS=("restic $RESTIC_MODULE $RESTIC_VERSION $RESTIC_MODULE/cmd/restic"
  "rest-server $REST_SERVER_MODULE $REST_SERVER_VERSION $REST_SERVER_MODULE/cmd/rest-server")
go_tools_ensure
