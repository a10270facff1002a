#!/usr/bin/env bash
# Builds cosign (COSIGN_VERSION below) from the Go module proxy, static (CGO_ENABLED=0, -trimpath), into
#   ${HARDENED_FLEET_CACHE:-~/.cache/hardened-fleet}/cosign/<COSIGN_VERSION>/bin/cosign
# A test tool only: test/supplyChain/signature.test.ts checks with it that fleet's signatures are
# cosign's (`cosign verify --key`) and that fleet verifies cosign's. Fleet itself signs and verifies
# with node:crypto (src/supplyChain/signature.ts). Progress on stderr; last stdout line: the bin
# directory. Nothing to do when the binary is there and `go version -m` shows the pinned version.
#
# Environment: HARDENED_FLEET_CACHE; GO (default: go on PATH, else /usr/local/go/bin/go);
# GOPROXY, GOMODCACHE, GOCACHE are passed through to go.
set -euo pipefail

COSIGN_MODULE=github.com/sigstore/cosign/v2
COSIGN_VERSION=2.6.5

log() { printf '[ensure-cosign] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

cache=${HARDENED_FLEET_CACHE:-${HOME:?HOME is not set}/.cache/hardened-fleet}
root=$cache/cosign/$COSIGN_VERSION
bin=$root/bin
pkg=$COSIGN_MODULE/cmd/cosign

GO=${GO:-$(command -v go 2>/dev/null || echo /usr/local/go/bin/go)}
export GOTOOLCHAIN=local CGO_ENABLED=0

# built_ok FILE: a static, trimmed build of COSIGN_MODULE@vCOSIGN_VERSION (from `go version -m`)
built_ok() {
  local file=$1 info
  [ -x "$file" ] || return 1
  info=$("$GO" version -m "$file" 2>/dev/null) || return 1
  awk -v m="$COSIGN_MODULE" -v v="v$COSIGN_VERSION" '
    $1 == "mod" && $2 == m && $3 == v { mod = 1 }
    $1 == "build" && $2 == "CGO_ENABLED=0" { cgo = 1 }
    $1 == "build" && $2 == "-trimpath=true" { trim = 1 }
    END { exit !(mod && cgo && trim) }' <<<"$info"
}

[ -x "$GO" ] || { built_ok "$bin/cosign" 2>/dev/null && { echo "$bin"; exit 0; }; die "no Go toolchain (set GO=/path/to/go): cosign is built from the Go module proxy"; }
if built_ok "$bin/cosign"; then echo "$bin"; exit 0; fi

mkdir -p "$bin"
# serialise runs sharing the cache
exec 9>"$cache/cosign/.lock"
if ! flock -n 9; then
  log "another ensure-cosign.sh is building; waiting for it ..."
  flock 9
fi
if built_ok "$bin/cosign"; then echo "$bin"; exit 0; fi

work=$(mktemp -d "${TMPDIR:-/tmp}/hf-cosign.XXXXXX")
cleanup() { chmod -R u+w "$work" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

log "cosign v$COSIGN_VERSION: building from $COSIGN_MODULE ($("$GO" env GOVERSION), Go module proxy) ..."
started=$SECONDS
logf=$root/cosign.build.log
# go install checks every module it downloads against go.sum / the checksum database
(cd "$work" && GOBIN="$work/out" "$GO" install -trimpath -ldflags '-s -w' "$pkg@v$COSIGN_VERSION") >"$logf" 2>&1 &
pid=$!
next=30
while sleep 1 && kill -0 "$pid" 2>/dev/null; do
  if [ $((SECONDS - started)) -ge $next ]; then log "... $((SECONDS - started))s so far (log: $logf)"; next=$((next + 30)); fi
done
if ! wait "$pid"; then
  grep -v '^go: downloading ' "$logf" | tail -n 30 >&2 || true
  die "building cosign v$COSIGN_VERSION failed (log: $logf)"
fi
built_ok "$work/out/cosign" ||
  die "$work/out/cosign is not a static build of $COSIGN_MODULE v$COSIGN_VERSION: $("$GO" version -m "$work/out/cosign" | head -3 | tr '\n\t' '  ')"
mv -f "$work/out/cosign" "$bin/cosign"
rm -f "$logf"
log "cosign v$COSIGN_VERSION: built in $((SECONDS - started))s, in $bin"
echo "$bin"
