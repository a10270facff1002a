#!/usr/bin/env bash
# Builds the vulnerability scanner trivy (the version in scripts/supply-chain-versions.env) from the
# Go module proxy, static (CGO_ENABLED=0, -trimpath, the release's ldflags), and the tests' fixture
# database writer (test/support/trivy-fixture-db, trivy-db's own Go packages at the version trivy
# pins) into
#   ${HARDENED_FLEET_CACHE:-~/.cache/hardened-fleet}/trivy/<TRIVY_VERSION>/bin/{trivy,trivy-fixture-db}
# Progress on stderr; last stdout line: the bin directory. Nothing to do when trivy is there and
# `go version -m` shows the pinned module, and the writer was built from the current sources.
# Cold (modules in the Go module cache, empty build cache): about 12 minutes on two cores, nearly all
# of it trivy's compile; again with a warm build cache: about 10 s; nothing to do: about 0.1 s.
# The binary: about 170 MB (stripped, static).
#
# Why not Debian's package: bookworm has none; the release binaries are not reachable here, and a
# build from the module proxy is checked against the Go checksum database like the toolchain.
#
# Environment: HARDENED_FLEET_CACHE; GO (default: go on PATH, else /usr/local/go/bin/go);
# GOPROXY, GOMODCACHE, GOCACHE are passed through to go.
set -euo pipefail

log() { printf '[ensure-trivy] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=supply-chain-versions.env
. "$here/scripts/supply-chain-versions.env"

cache=${HARDENED_FLEET_CACHE:-${HOME:?HOME is not set}/.cache/hardened-fleet}
root=$cache/trivy/$TRIVY_VERSION
bin=$root/bin
writer_src=$here/test/support/trivy-fixture-db
writer_stamp=$bin/.trivy-fixture-db.sources

GO=${GO:-$(command -v go 2>/dev/null || echo /usr/local/go/bin/go)}
export GOTOOLCHAIN=local CGO_ENABLED=0

grep -qF "$TRIVY_DB_MODULE v$TRIVY_DB_VERSION" "$writer_src/go.mod" ||
  die "$writer_src/go.mod does not require $TRIVY_DB_MODULE v$TRIVY_DB_VERSION (scripts/supply-chain-versions.env)"

# trivy_ok: bin/trivy is a static, trimmed build of TRIVY_MODULE@vTRIVY_VERSION with trivy-db at
# TRIVY_DB_VERSION, and says its version (-trimpath keeps -ldflags out of the build info: asked instead)
trivy_ok() {
  local info
  [ -x "$bin/trivy" ] || return 1
  info=$("$GO" version -m "$bin/trivy" 2>/dev/null) || return 1
  awk -v m="$TRIVY_MODULE" -v v="v$TRIVY_VERSION" -v dm="$TRIVY_DB_MODULE" -v dv="v$TRIVY_DB_VERSION" '
    $1 == "mod" && $2 == m && $3 == v { mod = 1 }
    $1 == "dep" && $2 == dm && $3 == dv { db = 1 }
    $1 == "build" && $2 == "CGO_ENABLED=0" { cgo = 1 }
    $1 == "build" && $2 == "-trimpath=true" { trim = 1 }
    END { exit !(mod && db && cgo && trim) }' <<<"$info" || return 1
  [ "$("$bin/trivy" --version 2>/dev/null | head -n 1)" = "Version: $TRIVY_VERSION" ]
}

# the writer's sources (checksums of its files): rebuilt when they change
writer_sources() { (cd "$writer_src" && sha256sum go.mod go.sum ./*.go); }
writer_ok() {
  [ -x "$bin/trivy-fixture-db" ] && [ -f "$writer_stamp" ] && [ "$(cat "$writer_stamp")" = "$(writer_sources)" ]
}

all_ok() { trivy_ok && writer_ok; }

[ -x "$GO" ] || { all_ok 2>/dev/null && { echo "$bin"; exit 0; }; die "no Go toolchain (set GO=/path/to/go): trivy is built from the Go module proxy"; }
if all_ok; then echo "$bin"; exit 0; fi

mkdir -p "$bin"
# serialise runs sharing the cache
exec 9>"$cache/trivy/.lock"
if ! flock -n 9; then
  log "another ensure-trivy.sh is building; waiting for it ..."
  flock 9
fi
if all_ok; then echo "$bin"; exit 0; fi

work=$(mktemp -d "${TMPDIR:-/tmp}/hf-trivy.XXXXXX")
cleanup() { chmod -R u+w "$work" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
modcache=$("$GO" env GOMODCACHE)
first_proxy=$("$GO" env GOPROXY); first_proxy=${first_proxy%%[,|]*}

# The same way as scripts/ensure-restic.sh: fetch the module and the dependencies its own go.sum
# pins (checked by the go command on download), then `go install pkg@version` from the module cache
# only, so the binary carries the module version and no version list is asked of the proxy.
install_trivy() {
  local dir sumdb pkg=$TRIVY_MODULE/cmd/trivy
  mkdir -p "$work/fetch" "$work/out"
  printf 'module hardened-fleet.invalid/fetch\n\ngo 1.24\n' >"$work/fetch/go.mod"
  dir=$(cd "$work/fetch" && GOFLAGS=-mod=mod "$GO" mod download -json "$TRIVY_MODULE@v$TRIVY_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
  [ -d "$dir" ] || die "the Go module proxy did not provide $TRIVY_MODULE@v$TRIVY_VERSION (GOPROXY=$("$GO" env GOPROXY))"
  cp -r "$dir" "$work/src"
  chmod -R u+w "$work/src"
  (cd "$work/src" && GOEXPERIMENT=$TRIVY_GOEXPERIMENT "$GO" list -deps ./cmd/trivy >/dev/null)
  sumdb=$("$GO" env GOSUMDB)
  if [ "$sumdb" = sum.golang.org ] && [[ $first_proxy == http* ]]; then
    sumdb="sum.golang.org $first_proxy/sumdb/sum.golang.org"
  fi
  (cd "$work" && GOPROXY="file://$modcache/cache/download" GOSUMDB=$sumdb GOBIN="$work/out" GOEXPERIMENT=$TRIVY_GOEXPERIMENT \
    "$GO" install -trimpath -ldflags "-s -w -X $TRIVY_MODULE/pkg/version/app.ver=$TRIVY_VERSION" "$pkg@v$TRIVY_VERSION")
  mv -f "$work/out/trivy" "$bin/trivy"
}

started=$SECONDS
if ! trivy_ok; then
  log "trivy v$TRIVY_VERSION: building from $TRIVY_MODULE ($("$GO" env GOVERSION), GOEXPERIMENT=$TRIVY_GOEXPERIMENT, Go module proxy) ..."
  t0=$SECONDS
  logf=$root/trivy.build.log
  install_trivy >"$logf" 2>&1 &
  pid=$!
  next=60
  while sleep 1 && kill -0 "$pid" 2>/dev/null; do
    if [ $((SECONDS - t0)) -ge $next ]; then log "... trivy: $((SECONDS - t0))s so far (log: $logf)"; next=$((next + 60)); fi
  done
  if ! wait "$pid"; then
    grep -v '^go: downloading ' "$logf" | tail -n 30 >&2 || true
    die "building trivy v$TRIVY_VERSION failed (log: $logf)"
  fi
  rm -f "$logf"
  trivy_ok || die "$bin/trivy is not a static build of $TRIVY_MODULE v$TRIVY_VERSION with $TRIVY_DB_MODULE v$TRIVY_DB_VERSION saying its version: $("$GO" version -m "$bin/trivy" | grep -E "^\s(mod|build)\s|trivy-db" | tr '\n\t' '  '); $("$bin/trivy" --version 2>&1 | head -n 1)"
  log "trivy v$TRIVY_VERSION: built in $((SECONDS - t0))s"
fi

if ! writer_ok; then
  log "trivy-fixture-db: building from $writer_src ..."
  t0=$SECONDS
  sources=$(writer_sources)
  (cd "$writer_src" && "$GO" build -mod=readonly -buildvcs=false -trimpath -ldflags '-s -w' -o "$work/trivy-fixture-db" .) >&2 ||
    die "building the fixture database writer failed"
  mv -f "$work/trivy-fixture-db" "$bin/trivy-fixture-db"
  printf '%s\n' "$sources" >"$writer_stamp"
  log "trivy-fixture-db: built in $((SECONDS - t0))s"
fi

all_ok || die "the binaries in $bin do not match scripts/supply-chain-versions.env after the build"
log "ready in $((SECONDS - started))s: trivy $TRIVY_VERSION and trivy-fixture-db in $bin"
echo "$bin"
