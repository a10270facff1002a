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

# built_ok FILE MODULE VERSION: FILE is a static, trimmed build of MODULE@vVERSION (from `go version -m`)
built_ok() {
  local file=$1 module=$2 version=$3 info
  [ -x "$file" ] || return 1
  info=$("$GO" version -m "$file" 2>/dev/null) || return 1
  awk -v m="$module" -v v="v$version" '
    $1 == "mod" && $2 == m && $3 == v { mod = 1 }
    $1 == "build" && $2 == "CGO_ENABLED=0" { cgo = 1 }
    $1 == "build" && $2 == "-trimpath=true" { trim = 1 }
    END { exit !(mod && cgo && trim) }' <<<"$info"
}

all_ok() {
  local t name module version pkg
  for t in "${TOOLS[@]}"; do
    read -r name module version pkg <<<"$t"
    built_ok "$bin/$name" "$module" "$version" || return 1
  done
}

[ -x "$GO" ] || { all_ok 2>/dev/null && { echo "$bin"; exit 0; }; die "no Go toolchain (set GO=/path/to/go): restic and rest-server are built from the Go module proxy"; }
if all_ok; then echo "$bin"; exit 0; fi

mkdir -p "$bin"
# serialise runs sharing the cache
exec 9>"$cache/restic/.lock"
if ! flock -n 9; then
  log "another ensure-restic.sh is building; waiting for it ..."
  flock 9
fi
if all_ok; then echo "$bin"; exit 0; fi

work=$(mktemp -d "${TMPDIR:-/tmp}/hf-restic.XXXXXX")
cleanup() { chmod -R u+w "$work" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
modcache=$("$GO" env GOMODCACHE)
first_proxy=$("$GO" env GOPROXY); first_proxy=${first_proxy%%[,|]*}

# install_tool NAME MODULE VERSION PACKAGE
# `go install PACKAGE@vVERSION` stamps the module version into the binary, but it also reads the
# module's version list for deprecations, which the proxy may refuse (it answered 403 for
# rest-server's while serving v0.14.0 itself). So: fetch the module and the dependencies its own
# go.sum pins (all checked by the go command on download), then install from the module cache only.
install_tool() {
  local name=$1 module=$2 version=$3 pkg=$4 dir sumdb
  mkdir -p "$work/fetch-$name" "$work/out"
  printf 'module hardened-fleet.invalid/fetch\n\ngo 1.24\n' >"$work/fetch-$name/go.mod"
  dir=$(cd "$work/fetch-$name" && GOFLAGS=-mod=mod "$GO" mod download -json "$module@v$version" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
  [ -d "$dir" ] || die "the Go module proxy did not provide $module@v$version (GOPROXY=$("$GO" env GOPROXY))"
  cp -r "$dir" "$work/src-$name"
  chmod -R u+w "$work/src-$name"
  (cd "$work/src-$name" && "$GO" list -deps "./${pkg#"$module"/}" >/dev/null)
  sumdb=$("$GO" env GOSUMDB)
  # the checksum database through the proxy, as the go command reaches it when GOPROXY is a URL
  if [ "$sumdb" = sum.golang.org ] && [[ $first_proxy == http* ]]; then
    sumdb="sum.golang.org $first_proxy/sumdb/sum.golang.org"
  fi
  (cd "$work" && GOPROXY="file://$modcache/cache/download" GOSUMDB=$sumdb GOBIN="$work/out" \
    "$GO" install -trimpath -ldflags '-s -w' "$pkg@v$version")
  built_ok "$work/out/$name" "$module" "$version" ||
    die "$work/out/$name is not a static build of $module v$version: $("$GO" version -m "$work/out/$name" | head -3 | tr '\n\t' '  ')"
  mv -f "$work/out/$name" "$bin/$name"
}

started=$SECONDS
for t in "${TOOLS[@]}"; do
  read -r name module version pkg <<<"$t"
  built_ok "$bin/$name" "$module" "$version" && continue
  log "$name v$version: building from $module ($("$GO" env GOVERSION), Go module proxy) ..."
  t0=$SECONDS
  logf=$root/$name.build.log
  install_tool "$name" "$module" "$version" "$pkg" >"$logf" 2>&1 &
  pid=$!
  next=30
  while sleep 1 && kill -0 "$pid" 2>/dev/null; do
    if [ $((SECONDS - t0)) -ge $next ]; then log "... $name: $((SECONDS - t0))s so far (log: $logf)"; next=$((next + 30)); fi
  done
  if ! wait "$pid"; then
    grep -v '^go: downloading ' "$logf" | tail -n 30 >&2 || true
    die "building $name v$version failed (log: $logf)"
  fi
  rm -f "$logf"
  log "$name v$version: built in $((SECONDS - t0))s"
done
all_ok || die "the binaries in $bin do not match scripts/restic-versions.env after the build"
log "ready in $((SECONDS - started))s: restic $RESTIC_VERSION, rest-server $REST_SERVER_VERSION in $bin"
echo "$bin"
