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

log() { printf '[ensure-runsc] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=runsc-version.env
. "$here/scripts/runsc-version.env"

cache=${HARDENED_FLEET_CACHE:-${HOME:?HOME is not set}/.cache/hardened-fleet}
root=$cache/runsc/$RUNSC_VERSION
bin=$root/bin
pkg=$RUNSC_MODULE/runsc

GO=${GO:-$(command -v go 2>/dev/null || echo /usr/local/go/bin/go)}
export GOTOOLCHAIN=local CGO_ENABLED=0

# shellcheck source=go-tools.sh
. "$here/scripts/go-tools.sh"
# built_ok FILE: a static, trimmed build of the pinned module that runs and says its version
# (-trimpath keeps -ldflags out of the build info: asked instead)
built_ok() {
  go_tools_built_ok "$1" "$RUNSC_MODULE" "$RUNSC_VERSION" || return 1
  [ "$("$1" --version 2>/dev/null | head -n 1)" = "runsc version $RUNSC_VERSION" ]
}

[ -x "$GO" ] || { built_ok "$bin/runsc" 2>/dev/null && { echo "$bin"; exit 0; }; die "no Go toolchain (set GO=/path/to/go): runsc is built from the Go module proxy"; }
if built_ok "$bin/runsc"; then echo "$bin"; exit 0; fi

mkdir -p "$bin"
go_tools_lock "$cache/runsc" runsc
if built_ok "$bin/runsc"; then echo "$bin"; exit 0; fi
go_tools_workdir runsc

log "runsc v$RUNSC_VERSION: building from $RUNSC_MODULE ($("$GO" env GOVERSION), Go module proxy) ..."
started=$SECONDS
go_tools_run "runsc v$RUNSC_VERSION" "$root/runsc.build.log" go_tools_install "$RUNSC_MODULE" "$RUNSC_VERSION" "$pkg" "$work/out" \
  "-s -w -X $RUNSC_MODULE/runsc/version.version=$RUNSC_VERSION"
built_ok "$work/out/runsc" ||
  die "$work/out/runsc is not a static build of $RUNSC_MODULE v$RUNSC_VERSION that runs: $("$GO" version -m "$work/out/runsc" | head -3 | tr '\n\t' '  '); $("$work/out/runsc" --version 2>&1 | head -n 1)"
mv -f "$work/out/runsc" "$bin/runsc"
log "runsc v$RUNSC_VERSION: built in $((SECONDS - started))s, in $bin"
echo "$bin"
