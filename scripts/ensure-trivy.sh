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

here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=supply-chain-versions.env
. "$here/scripts/supply-chain-versions.env"
# shellcheck source=go-tools.sh
. "$here/scripts/go-tools.sh"
go_tools_init trivy "$TRIVY_VERSION"
writer_src=$here/test/support/trivy-fixture-db
writer_stamp=$bin/.trivy-fixture-db.sources

# a copy of the project without test/ (a test's own copy) has no writer to build: trivy alone
has_writer=false
if [ -d "$writer_src" ]; then
  has_writer=true
  grep -qF "$TRIVY_DB_MODULE v$TRIVY_DB_VERSION" "$writer_src/go.mod" ||
    die "$writer_src/go.mod does not require $TRIVY_DB_MODULE v$TRIVY_DB_VERSION (scripts/supply-chain-versions.env)"
fi

# trivy_ok: bin/trivy is a static, trimmed build of TRIVY_MODULE@vTRIVY_VERSION with trivy-db at
# TRIVY_DB_VERSION, and says its version (-trimpath keeps -ldflags out of the build info: asked instead)
trivy_ok() {
  go_tools_built_ok "$bin/trivy" "$TRIVY_MODULE" "$TRIVY_VERSION" "$TRIVY_DB_MODULE" "$TRIVY_DB_VERSION" || return 1
  [ "$("$bin/trivy" --version 2>/dev/null | head -n 1)" = "Version: $TRIVY_VERSION" ]
}

# the writer's sources (checksums of its files): rebuilt when they change
writer_sources() { (cd "$writer_src" && sha256sum go.mod go.sum ./*.go); }
writer_ok() {
  [ "$has_writer" = false ] && return 0
  [ -x "$bin/trivy-fixture-db" ] && [ -f "$writer_stamp" ] && [ "$(cat "$writer_stamp")" = "$(writer_sources)" ]
}

all_ok() { trivy_ok && writer_ok; }

[ -x "$GO" ] || { all_ok 2>/dev/null && { echo "$bin"; exit 0; }; die "no Go toolchain (set GO=/path/to/go): trivy is built from the Go module proxy"; }
if all_ok; then echo "$bin"; exit 0; fi

mkdir -p "$bin"
go_tools_lock "$cache/trivy" trivy
if all_ok; then echo "$bin"; exit 0; fi
go_tools_workdir trivy

# trivy 0.74 imports encoding/json/v2, which Go 1.26 builds only with GOEXPERIMENT=jsonv2
install_trivy() {
  GOEXPERIMENT=$TRIVY_GOEXPERIMENT go_tools_install "$TRIVY_MODULE" "$TRIVY_VERSION" "$TRIVY_MODULE/cmd/trivy" "$work/out" \
    "-s -w -X $TRIVY_MODULE/pkg/version/app.ver=$TRIVY_VERSION"
  mv -f "$work/out/trivy" "$bin/trivy"
}

started=$SECONDS
if ! trivy_ok; then
  log "trivy v$TRIVY_VERSION: building from $TRIVY_MODULE ($("$GO" env GOVERSION), GOEXPERIMENT=$TRIVY_GOEXPERIMENT, Go module proxy) ..."
  t0=$SECONDS
  go_tools_run "trivy v$TRIVY_VERSION" "$root/trivy.build.log" install_trivy
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
