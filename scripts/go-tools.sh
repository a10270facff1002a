# Sourced by the scripts/ensure-<tool>.sh that build a pinned Go tool from the Go module proxy into
# the user's cache (restic, trivy, cosign, runsc): what they share. After go_tools_init, a script
# that builds plain `go install` binaries lists them in GO_TOOLS and calls go_tools_ensure; trivy's,
# which builds a second program from this project's sources too, uses the pieces below it.

# go_tools_init NAME VERSION: log and die (prefixed [ensure-NAME]), GO, and the cache: cache, root
# ($cache/NAME/VERSION) and bin ($root/bin); builds are static and use the local toolchain only
go_tools_init() {
  go_tools_name=$1
  log() { printf '[ensure-%s] %s\n' "$go_tools_name" "$*" >&2; }
  die() { log "error: $*"; exit 1; }
  cache=${HARDENED_FLEET_CACHE:-${HOME:?HOME is not set}/.cache/hardened-fleet}
  root=$cache/$1/$2
  bin=$root/bin
  GO=${GO:-$(command -v go 2>/dev/null || echo /usr/local/go/bin/go)}
  export GOTOOLCHAIN=local CGO_ENABLED=0
}

# go_tools_ensure: every tool of the array GO_TOOLS ("name module version package [ldflags]") in
# $bin, built when it is missing or not what go_tools_tool_ok NAME FILE accepts (by default: a
# static, trimmed build of its module at its version; a script may define its own, calling
# go_tools_built_ok first). One build at a time; progress on stderr; prints $bin last.
go_tools_ensure() {
  local t name module version pkg ldflags started t0 names=()
  for t in "${GO_TOOLS[@]}"; do read -r name _ <<<"$t"; names+=("$name"); done
  [ -x "$GO" ] || { go_tools_all_ok 2>/dev/null && { echo "$bin"; return 0; }
    die "no Go toolchain (set GO=/path/to/go): ${names[*]} built from the Go module proxy"; }
  if go_tools_all_ok; then echo "$bin"; return 0; fi
  mkdir -p "$bin"
  go_tools_lock "$cache/$go_tools_name" "$go_tools_name"
  if go_tools_all_ok; then echo "$bin"; return 0; fi
  go_tools_workdir "$go_tools_name"
  started=$SECONDS
  for t in "${GO_TOOLS[@]}"; do
    read -r name module version pkg ldflags <<<"$t"
    go_tools_tool_ok "$name" "$bin/$name" && continue
    log "$name v$version: building from $module ($("$GO" env GOVERSION), Go module proxy) ..."
    t0=$SECONDS
    go_tools_run "$name v$version" "$root/$name.build.log" go_tools_install "$module" "$version" "$pkg" "$work/out-$name" "$ldflags"
    go_tools_tool_ok "$name" "$work/out-$name/$name" ||
      die "$work/out-$name/$name is not a static build of $module v$version that passes its checks: $("$GO" version -m "$work/out-$name/$name" | head -3 | tr '\n\t' '  ')"
    mv -f "$work/out-$name/$name" "$bin/$name"
    log "$name v$version: built in $((SECONDS - t0))s"
  done
  go_tools_all_ok || die "the binaries in $bin are not the pinned versions after the build"
  log "ready in $((SECONDS - started))s: ${names[*]} in $bin"
  echo "$bin"
}

# go_tools_all_ok: every tool of GO_TOOLS is in $bin and passes go_tools_tool_ok
go_tools_all_ok() {
  local t name
  for t in "${GO_TOOLS[@]}"; do
    read -r name _ <<<"$t"
    go_tools_tool_ok "$name" "$bin/$name" || return 1
  done
}

# go_tools_tool_ok NAME FILE: the default check (a script may define its own after sourcing this)
go_tools_tool_ok() {
  local t name module version
  for t in "${GO_TOOLS[@]}"; do
    read -r name module version _ <<<"$t"
    [ "$name" = "$1" ] && { go_tools_built_ok "$2" "$module" "$version"; return; }
  done
  return 1
}

# go_tools_built_ok FILE MODULE VERSION [DEP_MODULE DEP_VERSION]: FILE is a static, trimmed build of
# MODULE@vVERSION (and has DEP_MODULE at vDEP_VERSION), as `go version -m` reads it from the binary
go_tools_built_ok() {
  local file=$1 module=$2 version=$3 dep=${4:-} depv=${5:-} info
  [ -x "$file" ] || return 1
  info=$("$GO" version -m "$file" 2>/dev/null) || return 1
  awk -v m="$module" -v v="v$version" -v dm="$dep" -v dv="v$depv" '
    $1 == "mod" && $2 == m && $3 == v { mod = 1 }
    $1 == "dep" && $2 == dm && $3 == dv { d = 1 }
    $1 == "build" && $2 == "CGO_ENABLED=0" { cgo = 1 }
    $1 == "build" && $2 == "-trimpath=true" { trim = 1 }
    END { exit !(mod && cgo && trim && (dm == "" || d)) }' <<<"$info"
}

# go_tools_lock DIR NAME: one build at a time in the cache directory DIR (flock; the kernel drops
# the lock when the script ends, however it ends)
go_tools_lock() {
  mkdir -p "$1"
  exec 9>"$1/.lock"
  if ! flock -n 9; then
    log "another ensure-$2.sh is building; waiting for it ..."
    flock 9
  fi
}

# go_tools_workdir NAME: a scratch directory, $work, removed when the script exits
go_tools_workdir() {
  work=$(mktemp -d "${TMPDIR:-/tmp}/hf-$1.XXXXXX")
  trap 'chmod -R u+w "$work" 2>/dev/null || true; rm -rf "$work"' EXIT
}

# go_tools_install MODULE VERSION PACKAGE OUTDIR [LDFLAGS]
# `go install PACKAGE@vVERSION` stamps the module version into the binary, but it also reads the
# module's version list for deprecations, which the proxy may refuse (it answered 403 for
# rest-server's while serving v0.14.0 itself). So: fetch the module and the dependencies its own
# go.sum pins (all checked by the go command on download), then install from the module cache
# only. Settings such as GOEXPERIMENT pass through the environment.
go_tools_install() {
  local module=$1 version=$2 pkg=$3 out=$4 ldflags=${5:--s -w} fetch dir sumdb modcache first_proxy
  fetch=$(mktemp -d "$work/fetch.XXXXXX")
  printf 'module hardened-fleet.invalid/fetch\n\ngo 1.24\n' >"$fetch/go.mod"
  dir=$(cd "$fetch" && GOFLAGS=-mod=mod "$GO" mod download -json "$module@v$version" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
  [ -d "$dir" ] || die "the Go module proxy did not provide $module@v$version (GOPROXY=$("$GO" env GOPROXY))"
  cp -r "$dir" "$fetch/src"
  chmod -R u+w "$fetch/src"
  (cd "$fetch/src" && "$GO" list -deps "./${pkg#"$module"/}" >/dev/null)
  modcache=$("$GO" env GOMODCACHE)
  first_proxy=$("$GO" env GOPROXY); first_proxy=${first_proxy%%[,|]*}
  sumdb=$("$GO" env GOSUMDB)
  # the checksum database through the proxy, as the go command reaches it when GOPROXY is a URL
  if [ "$sumdb" = sum.golang.org ] && [[ $first_proxy == http* ]]; then
    sumdb="sum.golang.org $first_proxy/sumdb/sum.golang.org"
  fi
  mkdir -p "$out"
  (cd "$work" && GOPROXY="file://$modcache/cache/download" GOSUMDB=$sumdb GOBIN="$out" \
    "$GO" install -trimpath -ldflags "$ldflags" "$pkg@v$version")
}

# go_tools_run LABEL LOGFILE COMMAND...: COMMAND in the background with its output in LOGFILE and a
# progress line every 30 s; when it fails, the log's last lines, and the script ends
go_tools_run() {
  local label=$1 logf=$2 t0=$SECONDS next=30 pid
  shift 2
  "$@" >"$logf" 2>&1 &
  pid=$!
  while sleep 1 && kill -0 "$pid" 2>/dev/null; do
    if [ $((SECONDS - t0)) -ge $next ]; then log "... $label: $((SECONDS - t0))s so far (log: $logf)"; next=$((next + 30)); fi
  done
  if ! wait "$pid"; then
    grep -v '^go: downloading ' "$logf" | tail -n 30 >&2 || true
    die "building $label failed (log: $logf)"
  fi
  rm -f "$logf"
}
