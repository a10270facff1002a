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

here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=supply-chain-versions.env
. "$here/scripts/supply-chain-versions.env"
# shellcheck source=go-tools.sh
. "$here/scripts/go-tools.sh"
go_tools_init cosign "$COSIGN_VERSION"
GO_TOOLS=("cosign $COSIGN_MODULE $COSIGN_VERSION $COSIGN_MODULE/cmd/cosign")
go_tools_ensure
