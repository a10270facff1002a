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

log() { printf '[ensure-restic] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=restic-versions.env
. "$here/scripts/restic-versions.env"

cache=${HARDENED_FLEET_CACHE:-${HOME:?HOME is not set}/.cache/hardened-fleet}
root=$cache/restic/$RESTIC_VERSION
bin=$root/bin
# name module version package
TOOLS=("restic $RESTIC_MODULE $RESTIC_VERSION $RESTIC_MODULE/cmd/restic"
  "rest-server $REST_SERVER_MODULE $REST_SERVER_VERSION $REST_SERVER_MODULE/cmd/rest-server")

GO=${GO:-$(command -v go 2>/dev/null || echo /usr/local/go/bin/go)}
export GOTOOLCHAIN=local CGO_ENABLED=0

# shellcheck source=go-tools.sh
. "$here/scripts/go-tools.sh"

all_ok() {
  local t name module version pkg
  for t in "${TOOLS[@]}"; do
    read -r name module version pkg <<<"$t"
    go_tools_built_ok "$bin/$name" "$module" "$version" || return 1
  done
}

[ -x "$GO" ] || { all_ok 2>/dev/null && { echo "$bin"; exit 0; }; die "no Go toolchain (set GO=/path/to/go): restic and rest-server are built from the Go module proxy"; }
if all_ok; then echo "$bin"; exit 0; fi

mkdir -p "$bin"
go_tools_lock "$cache/restic" restic
if all_ok; then echo "$bin"; exit 0; fi
go_tools_workdir restic

# install_tool NAME MODULE VERSION PACKAGE: into bin/, checked
install_tool() {
  local name=$1 module=$2 version=$3 pkg=$4
  go_tools_install "$module" "$version" "$pkg" "$work/out-$name"
  go_tools_built_ok "$work/out-$name/$name" "$module" "$version" ||
    die "$work/out-$name/$name is not a static build of $module v$version: $("$GO" version -m "$work/out-$name/$name" | head -3 | tr '\n\t' '  ')"
  mv -f "$work/out-$name/$name" "$bin/$name"
}

started=$SECONDS
for t in "${TOOLS[@]}"; do
  read -r name module version pkg <<<"$t"
  go_tools_built_ok "$bin/$name" "$module" "$version" && continue
  log "$name v$version: building from $module ($("$GO" env GOVERSION), Go module proxy) ..."
  t0=$SECONDS
  go_tools_run "$name v$version" "$root/$name.build.log" install_tool "$name" "$module" "$version" "$pkg"
  log "$name v$version: built in $((SECONDS - t0))s"
done
all_ok || die "the binaries in $bin do not match scripts/restic-versions.env after the build"
log "ready in $((SECONDS - started))s: restic $RESTIC_VERSION, rest-server $REST_SERVER_VERSION in $bin"
echo "$bin"
