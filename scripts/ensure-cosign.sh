#!/usr/bin/env bash
# Builds cosign (COSIGN_VERSION in scripts/supply-chain-versions.env) from the Go module proxy, static (CGO_ENABLED=0, -trimpath), into
#   ${HARDENED_FLEET_CACHE:-~/.cache/hardened-fleet}/cosign/<COSIGN_VERSION>/bin/cosign
# A test tool only: test/supplyChain/signature.test.ts checks with it that fleet's signatures are
# cosign's (`cosign verify --key`) and that fleet verifies cosign's. Fleet itself signs and verifies
# with node:crypto (src/supplyChain/signature.ts). Progress on stderr; last stdout line: the bin
# directory. Nothing to do when the binary is there and `go version -m` shows the pinned version.
#
# Environment: HARDENED_FLEET_CACHE; GO (default: go on PATH, else /usr/local/go/bin/go);
# GOPROXY, GOMODCACHE, GOCACHE are passed through to go.
set -euo pipefail

log() { printf '[ensure-cosign] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=supply-chain-versions.env
. "$here/scripts/supply-chain-versions.env"

cache=${HARDENED_FLEET_CACHE:-${HOME:?HOME is not set}/.cache/hardened-fleet}
root=$cache/cosign/$COSIGN_VERSION
bin=$root/bin
pkg=$COSIGN_MODULE/cmd/cosign

GO=${GO:-$(command -v go 2>/dev/null || echo /usr/local/go/bin/go)}
export GOTOOLCHAIN=local CGO_ENABLED=0

# shellcheck source=go-tools.sh
. "$here/scripts/go-tools.sh"
built_ok() { go_tools_built_ok "$1" "$COSIGN_MODULE" "$COSIGN_VERSION"; }

[ -x "$GO" ] || { built_ok "$bin/cosign" 2>/dev/null && { echo "$bin"; exit 0; }; die "no Go toolchain (set GO=/path/to/go): cosign is built from the Go module proxy"; }
if built_ok "$bin/cosign"; then echo "$bin"; exit 0; fi

mkdir -p "$bin"
go_tools_lock "$cache/cosign" cosign
if built_ok "$bin/cosign"; then echo "$bin"; exit 0; fi
go_tools_workdir cosign

log "cosign v$COSIGN_VERSION: building from $COSIGN_MODULE ($("$GO" env GOVERSION), Go module proxy) ..."
started=$SECONDS
go_tools_run "cosign v$COSIGN_VERSION" "$root/cosign.build.log" go_tools_install "$COSIGN_MODULE" "$COSIGN_VERSION" "$pkg" "$work/out"
built_ok "$work/out/cosign" ||
  die "$work/out/cosign is not a static build of $COSIGN_MODULE v$COSIGN_VERSION: $("$GO" version -m "$work/out/cosign" | head -3 | tr '\n\t' '  ')"
mv -f "$work/out/cosign" "$bin/cosign"
log "cosign v$COSIGN_VERSION: built in $((SECONDS - started))s, in $bin"
echo "$bin"
