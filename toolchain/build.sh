#!/usr/bin/env bash
# Build the Pulumi toolchain pinned in toolchain/versions.env from official sources, and install
# its plugins into the project-local Pulumi home. The only command that builds anything
# (`npm run toolchain`); fleet commands and tests only look for the result (toolchain/locate.sh).
#
#   bash toolchain/build.sh            # progress on stderr; last stdout line: the bin directory
#
# What it provides, cached in ${HARDENED_FLEET_CACHE:-~/.cache/hardened-fleet}/toolchain-official/<PULUMI_VERSION>/:
#   bin/pulumi                         CLI, built from github.com/pulumi/pulumi/pkg/v3 (Go module proxy)
#   bin/pulumi-language-nodejs         official language host  } built by
#   plugins/pulumi-resource-docker     official docker provider } ../shared/third_party/build-official.sh
#   plugins/pulumi-resource-random     official random provider } from the official sources there
#   bin/pulumi-resource-pulumi-nodejs  (and the other nodejs/dist scripts) from github.com/pulumi/pulumi/sdk/v3
# then `pulumi plugin install resource NAME VERSION --file …` into <repo>/.fleet/pulumi-home.
#
# A cold build takes about 15-20 minutes on two cores; a later run only checks (a few seconds).
# If an official `pulumi` >= PULUMI_VERSION with the pinned plugins is on PATH, nothing is built.
#
# Options:
#   --force       rebuild everything and reinstall the plugins
#   --no-system   build even if a suitable pulumi is on PATH
#   -h, --help    show this help
#
# Environment:
#   HARDENED_FLEET_CACHE        cache root (default ~/.cache/hardened-fleet)
#   HARDENED_FLEET_THIRD_PARTY  official sources (default <repo>/../shared/third_party)
#   GOPROXY, GOMODCACHE, GOCACHE, GONOSUMDB   passed through to go
set -euo pipefail

# shellcheck source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

FORCE=0
while [ $# -gt 0 ]; do
	case "$1" in
	--force) FORCE=1 ;;
	--no-system) export HARDENED_FLEET_NO_SYSTEM_PULUMI=1 ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
		exit 0
		;;
	*) tc_die "unknown argument: $1 (see --help)" ;;
	esac
	shift
done

if [ "$FORCE" = 0 ] && [ -z "${HARDENED_FLEET_PULUMI_BIN:-}" ] && dir="$(system_toolchain)"; then
	tc_log "using your pulumi v$(pulumi_version "$dir/pulumi") from PATH ($dir) with docker $DOCKER_PLUGIN_VERSION and random $RANDOM_PLUGIN_VERSION in ${PULUMI_HOME:-~/.pulumi}: nothing to build"
	printf '%s\n' "$dir"
	exit 0
fi

# ---------------------------------------------------------------------------------------------
mkdir -p "$BIN_DIR" "$PLUGIN_BIN_DIR" "$CACHE_ROOT/logs"
# Serialise concurrent runs sharing the cache.
exec 9>"$CACHE_ROOT/.lock"
if ! flock -n 9; then
	tc_log "another toolchain build is running; waiting for it ..."
	flock 9
fi

GO="${GO:-$(command -v go 2>/dev/null || echo /usr/local/go/bin/go)}"
[ -x "$GO" ] || tc_die "no Go toolchain found (set GO=/path/to/go); Go >= 1.25.11 builds the toolchain from source"
export PATH="$(dirname "$GO"):$PATH"
export GOTOOLCHAIN=local

START_ALL=$SECONDS
WORK="$(mktemp -d "${TMPDIR:-/tmp}/hf-toolchain.XXXXXX")"
cleanup() {
	chmod -R u+w "$WORK" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

# with_progress LABEL LOGFILE CMD...: run CMD (in the background, so `set -e` holds inside it) with
# its output in LOGFILE, printing a progress line every 30 s, and the log's tail on failure.
with_progress() {
	local label="$1" logf="$2" t0=$SECONDS rc=0 pid next=30
	shift 2
	"$@" >"$logf" 2>&1 &
	pid=$!
	while sleep 1 && kill -0 "$pid" 2>/dev/null; do
		if [ $((SECONDS - t0)) -ge "$next" ]; then
			tc_log "... $label: $((SECONDS - t0))s so far (log: $logf, $(wc -l <"$logf" 2>/dev/null || echo 0) lines)"
			next=$((next + 30))
		fi
	done
	wait "$pid" || rc=$?
	if [ "$rc" != 0 ]; then
		grep -v '^go: downloading ' "$logf" | tail -n 40 >&2 || true
		if grep -q -E '(403 Forbidden|404 Not Found|410 Gone|module version is not available|unknown revision)' "$logf"; then
			tc_die "$label failed: the Go module proxy refused a module (see above; full log: $logf)"
		fi
		tc_die "$label failed (see above; full log: $logf)"
	fi
	tc_log "$label: done in $((SECONDS - t0))s"
}

# --- the Pulumi CLI ----------------------------------------------------------------------------
cli_recipe() { echo "pulumi=$PULUMI_VERSION go=$("$GO" env GOVERSION) flags=trimpath,-s,-w"; }

build_cli() {
	local pkg_dir sdk_dir out
	mkdir -p "$WORK/fetch"
	printf 'module toolchain.invalid/fetch\n\ngo 1.25\n' >"$WORK/fetch/go.mod"
	fetch() { (cd "$WORK/fetch" && GOFLAGS=-mod=mod "$GO" mod download -json "$1") | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p'; }
	pkg_dir="$(fetch "$PULUMI_PKG_MODULE@v$PULUMI_VERSION")"
	sdk_dir="$(fetch "$PULUMI_SDK_MODULE@v$PULUMI_VERSION")"
	[ -d "$pkg_dir" ] && [ -d "$sdk_dir" ] ||
		tc_die "the Go module proxy did not provide $PULUMI_PKG_MODULE / $PULUMI_SDK_MODULE @v$PULUMI_VERSION (GOPROXY=$("$GO" env GOPROXY))"
	# pkg/v3's go.mod replaces sdk/v3 with ../sdk: lay both out side by side (writable copies).
	mkdir -p "$WORK/pulumi"
	cp -r "$pkg_dir" "$WORK/pulumi/pkg"
	cp -r "$sdk_dir" "$WORK/pulumi/sdk"
	chmod -R u+w "$WORK/pulumi"
	out="$BIN_DIR/pulumi"
	(cd "$WORK/pulumi/pkg" && GOFLAGS=-mod=mod "$GO" build -trimpath \
		-ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION" \
		-o "$out.tmp" ./cmd/pulumi)
	mv -f "$out.tmp" "$out"
	cli_recipe >"$out.recipe"
	# Scripts the SDK module ships for the Node.js runtime (dynamic providers, policy packs).
	local f found=0
	for f in "$sdk_dir"/nodejs/dist/pulumi-*; do
		[ -f "$f" ] || continue
		case "$f" in *.cmd) continue ;; esac
		install -m 755 "$f" "$BIN_DIR/$(basename "$f")"
		found=1
	done
	[ "$found" = 1 ] || tc_die "no nodejs/dist/pulumi-* scripts in $PULUMI_SDK_MODULE@v$PULUMI_VERSION"
}

if [ "$FORCE" = 1 ] || [ ! -x "$BIN_DIR/pulumi" ] || [ ! -x "$BIN_DIR/pulumi-resource-pulumi-nodejs" ] ||
	[ "$(cat "$BIN_DIR/pulumi.recipe" 2>/dev/null)" != "$(cli_recipe)" ]; then
	tc_log "pulumi v$PULUMI_VERSION: building from $PULUMI_PKG_MODULE (Go module proxy; cold: about 5-10 minutes) ..."
	with_progress "pulumi v$PULUMI_VERSION" "$CACHE_ROOT/logs/pulumi.log" build_cli
else
	tc_log "pulumi v$PULUMI_VERSION: up to date"
fi
got="$(pulumi_version "$BIN_DIR/pulumi")"
[ "$got" = "$PULUMI_VERSION" ] || tc_die "$BIN_DIR/pulumi reports version '$got', expected $PULUMI_VERSION"

# --- official language host and providers (../shared/third_party) ------------------------------
OFFICIAL="$THIRD_PARTY/build-official.sh"
[ -f "$OFFICIAL" ] || tc_die "official sources not found: $OFFICIAL (set HARDENED_FLEET_THIRD_PARTY to the third_party directory)"
have="$(sha256sum "$OFFICIAL" | cut -d' ' -f1)"
[ "$have" = "$BUILD_OFFICIAL_SHA256" ] ||
	tc_die "$OFFICIAL has sha256 $have, but toolchain/versions.env pins BUILD_OFFICIAL_SHA256=$BUILD_OFFICIAL_SHA256 (another recipe or source set: review it, then update the pin)"

official() { # official COMPONENTS DEST LABEL COLD-TIME
	local only="$1" dest="$2" label="$3" cold="$4" logf="$CACHE_ROOT/logs/official-${1// /-}.log"
	tc_log "$label: official sources in $THIRD_PARTY (built only when missing or changed; cold: $cold) ..."
	with_progress "$label" "$logf" \
		env FORCE="$FORCE" ONLY="$only" WORK_DIR="$CACHE_ROOT/work" bash "$OFFICIAL" "$dest"
	grep -E '^\[build-official\] (pulumi-[a-z-]+( ->|: up to date)|total)' "$logf" | sed -e 's/^\[build-official\]/ /' >&2 || true
}
official langhost "$BIN_DIR" "pulumi-language-nodejs v$PULUMI_VERSION" "about 2-4 minutes"
official "random docker" "$PLUGIN_BIN_DIR" "pulumi-resource-random $RANDOM_PLUGIN_VERSION, pulumi-resource-docker $DOCKER_PLUGIN_VERSION" "about 10 minutes"
rm -rf "$CACHE_ROOT/work" # extracted sources; re-extracted whenever something is rebuilt

# --- plugins into the project-local Pulumi home ------------------------------------------------
mkdir -p "$PROJECT_PULUMI_HOME"
for p in "${PLUGINS[@]}"; do
	read -r name version <<<"$p"
	src="$PLUGIN_BIN_DIR/pulumi-resource-$name"
	dst="$(installed_plugin "$PROJECT_PULUMI_HOME" "$name" "$version")"
	if [ "$FORCE" = 0 ] && [ -x "$dst" ] && cmp -s "$src" "$dst"; then
		continue
	fi
	tc_log "installing resource plugin $name $version into $PROJECT_PULUMI_HOME ..."
	# only this project's home: replacing what is there never affects ~/.pulumi or other projects
	PULUMI_HOME="$PROJECT_PULUMI_HOME" "$BIN_DIR/pulumi" plugin rm resource "$name" "$version" --yes >/dev/null 2>&1 || true
	PULUMI_HOME="$PROJECT_PULUMI_HOME" "$BIN_DIR/pulumi" plugin install resource "$name" "$version" --file "$src" >&2 ||
		tc_die "pulumi plugin install resource $name $version --file $src failed"
done
missing="$(missing_plugins "$BIN_DIR/pulumi" "$PROJECT_PULUMI_HOME")"
[ -z "$missing" ] || tc_die "plugins not listed by 'pulumi plugin ls' in $PROJECT_PULUMI_HOME: $missing"
built_toolchain_ready || tc_die "the toolchain in $CACHE_ROOT is incomplete after the build"

tc_log "toolchain ready in $((SECONDS - START_ALL))s: pulumi v$PULUMI_VERSION, pulumi-language-nodejs, docker $DOCKER_PLUGIN_VERSION, random $RANDOM_PLUGIN_VERSION (PULUMI_HOME=$PROJECT_PULUMI_HOME; verify with \`npm run toolchain:check\`)"
printf '%s\n' "$BIN_DIR"
