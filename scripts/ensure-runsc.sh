#!/usr/bin/env bash
# Builds gVisor's runsc (RUNSC_VERSION in scripts/runsc-version.env) from the Go module proxy, static
# (CGO_ENABLED=0, -trimpath), into
#   ${HARDENED_FLEET_CACHE:-~/.cache/hardened-fleet}/runsc/<RUNSC_VERSION>/bin/runsc
# scripts/setup-engine.sh registers it with the local engine as the runtime "runsc" (not the default).
# Progress on stderr; last stdout line: the bin directory. Nothing to do when the binary is there,
# `go version -m` shows the pinned module version and `runsc --version` says it.
# Cold (empty build cache): about 2 minutes on two cores; nothing to do: about 0.1 s. The binary:
# about 85 MB (stripped, static).
#
# Why not Debian's package: bookworm has none, and gVisor's release binaries (storage.googleapis.com)
# are not reachable here; a build from the module proxy is checked against the Go checksum database
# like the toolchain. Bazel stamps the version into runsc; `go install` does not, so -ldflags -X does
# (the pseudo-version: it names the commit).
#
# Environment: HARDENED_FLEET_CACHE; GO (default: go on PATH, else /usr/local/go/bin/go);
# GOPROXY, GOMODCACHE, GOCACHE are passed through to go.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=runsc-version.env
. "$here/scripts/runsc-version.env"
# shellcheck source=go-tools.sh
. "$here/scripts/go-tools.sh"
go_tools_init runsc "$RUNSC_VERSION"
GO_TOOLS=("runsc $RUNSC_MODULE $RUNSC_VERSION $RUNSC_MODULE/runsc -s -w -X $RUNSC_MODULE/runsc/version.version=$RUNSC_VERSION")
# a static, trimmed build of the pinned module that runs and says its version (-trimpath keeps
# -ldflags out of the build info: asked instead)
go_tools_tool_ok() {
  go_tools_built_ok "$2" "$RUNSC_MODULE" "$RUNSC_VERSION" || return 1
  [ "$("$2" --version 2>/dev/null | head -n 1)" = "runsc version $RUNSC_VERSION" ]
}
go_tools_ensure
