#!/usr/bin/env bash
# Provide the Pulumi toolchain pinned in scripts/toolchain/versions.env:
# the Pulumi CLI, the Node.js language host and the docker/random resource
# plugins.
#
#   BIN=$(scripts/pulumi-toolchain.sh)        # progress goes to stderr
#   BIN=$(scripts/pulumi-toolchain.sh | tail -1)
#   export PATH="$BIN:$PATH"
#
# 1. If a `pulumi` on PATH has exactly PULUMI_VERSION, a Node.js language host
#    next to it, and the docker/random plugins at the pinned versions are
#    installed (`pulumi plugin ls`), that installation is used as is.
# 2. Otherwise everything is built from Go modules fetched through the Go
#    module proxy (no GitHub or get.pulumi.com downloads) and cached outside
#    the repository, keyed by version:
#      ${HARDENED_FLEET_CACHE:-$HOME/.cache/hardened-fleet}/toolchain/<PULUMI_VERSION>/
#        bin/      pulumi, pulumi-language-nodejs, pulumi-resource-pulumi-nodejs
#        plugins/  pulumi-resource-docker-<ver>, pulumi-resource-random-<ver>
#    and the plugins are installed into $PULUMI_HOME (default ~/.pulumi) with
#    `pulumi plugin install resource <name> <ver> --file <binary>`.
#    Later runs only check what is there, which takes a few seconds.
#
# The last line written to stdout is the bin directory. Progress and errors
# go to stderr.
#
# Options:
#   --print-bin   print the bin directory and exit: 0 if the toolchain there is
#                 complete, 3 if it still has to be built (nothing is built)
#   --force       rebuild everything and reinstall the plugins
#   --no-system   ignore any pulumi already on PATH
#   -h, --help    show this help
#
# Environment:
#   HARDENED_FLEET_CACHE  cache root (default $HOME/.cache/hardened-fleet)
#   PULUMI_HOME           where plugins are installed (default ~/.pulumi)
#   GO                    go binary (default: go on PATH, else /usr/local/go/bin/go)
#   GOPROXY, GOSUMDB, GONOSUMDB, GOFLAGS  passed through to go

set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOLCHAIN_DIR="$SCRIPT_DIR/toolchain"

# shellcheck source-path=SCRIPTDIR source=toolchain/versions.env
. "$TOOLCHAIN_DIR/versions.env"

log() { printf '[toolchain] %s\n' "$*" >&2; }
die() {
	printf '[toolchain] ERROR: %s\n' "$*" >&2
	exit 1
}

usage() {
	sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed -e 's/^# \{0,1\}//' >&2
}

MODE=ensure
FORCE=0
USE_SYSTEM=1
while [ $# -gt 0 ]; do
	case "$1" in
	--print-bin) MODE=print ;;
	--force) FORCE=1 ;;
	--no-system) USE_SYSTEM=0 ;;
	-h | --help)
		usage
		exit 0
		;;
	*) die "unknown argument: $1 (see --help)" ;;
	esac
	shift
done

# Never let our own pulumi invocations phone home.
export PULUMI_SKIP_UPDATE_CHECK=true

command -v node >/dev/null 2>&1 || die "node is required (Node.js programs, the language host and plugin checks)"

CACHE_ROOT="${HARDENED_FLEET_CACHE:-${HOME:?HOME is not set}/.cache/hardened-fleet}/toolchain/$PULUMI_VERSION"
BIN_DIR="$CACHE_ROOT/bin"
PLUGIN_BIN_DIR="$CACHE_ROOT/plugins"

PLUGINS=("docker $DOCKER_PLUGIN_VERSION" "random $RANDOM_PLUGIN_VERSION")

# ---------------------------------------------------------------------------
# Checks shared by the "use what is installed" and the "cached build" paths.

# missing_plugins PULUMI: print "name version" for each pinned resource plugin
# that `PULUMI plugin ls` does not list.
missing_plugins() {
	local pulumi="$1" listing
	if ! listing="$("$pulumi" plugin ls --json 2>/dev/null)"; then
		printf '%s\n' "${PLUGINS[@]}"
		return 0
	fi
	# shellcheck disable=SC2016 # JavaScript, not shell
	printf '%s' "$listing" | node -e '
		let text = "";
		process.stdin.on("data", (d) => (text += d));
		process.stdin.on("end", () => {
			let list = [];
			try { list = JSON.parse(text) || []; } catch (e) { list = []; }
			const have = new Set(list.map((p) => `${p.kind} ${p.name} ${String(p.version).replace(/^v/, "")}`));
			for (const want of process.argv.slice(1)) {
				const [name, version] = want.split(" ");
				if (!have.has(`resource ${name} ${version}`)) console.log(want);
			}
		});' "${PLUGINS[@]}"
}

# pulumi_version PULUMI: the version a pulumi binary reports, without "v".
pulumi_version() {
	"$1" version 2>/dev/null | head -n1 | sed -e 's/^v//' || true
}

# system_toolchain: print the bin dir of a suitable pulumi on PATH, if any.
system_toolchain() {
	local pulumi dir
	pulumi="$(command -v pulumi 2>/dev/null)" || return 1
	pulumi="$(readlink -f "$pulumi" 2>/dev/null || printf '%s' "$pulumi")"
	dir="$(dirname "$pulumi")"
	# Our own cache on PATH is checked (recipes included) by the cached path.
	[ "$dir" != "$(readlink -f "$BIN_DIR" 2>/dev/null || printf '%s' "$BIN_DIR")" ] || return 1
	[ "$(pulumi_version "$pulumi")" = "$PULUMI_VERSION" ] || return 1
	if [ ! -x "$dir/pulumi-language-nodejs" ] && ! command -v pulumi-language-nodejs >/dev/null 2>&1; then
		return 1
	fi
	[ -z "$(missing_plugins "$pulumi")" ] || return 1
	printf '%s\n' "$dir"
}

# Recipes: a build is reused only when the recipe it was built from matches.
sha_of() { cat "$@" | sha256sum | cut -c1-16; }
recipe_cli() { echo "pulumi=$PULUMI_VERSION"; }
recipe_langhost() { echo "pulumi=$PULUMI_VERSION src=$(sha_of "$TOOLCHAIN_DIR/langhost/main.go")"; }
recipe_provider() {
	local name="$1" version="$2" tfmod tfver
	case "$name" in
	docker) tfmod="$DOCKER_TF_SOURCE_MODULE" tfver="$DOCKER_TF_VERSION" ;;
	random) tfmod="$RANDOM_TF_SOURCE_MODULE" tfver="$RANDOM_TF_VERSION" ;;
	esac
	echo "$name=$version pulumi=$PULUMI_VERSION bridge=$TF_BRIDGE_VERSION sdkv2=$TF_PLUGIN_SDK_FORK_VERSION" \
		"upstream=$tfmod@$tfver src=$(sha_of "$TOOLCHAIN_DIR/providers/$name"/*.go \
			"$TOOLCHAIN_DIR/providers/$name/shim/pulumishim.go")"
}

# up_to_date FILE RECIPE: FILE exists and was built from RECIPE.
up_to_date() {
	[ "$FORCE" = 0 ] && [ -x "$1" ] && [ -f "$1.recipe" ] && [ "$(cat "$1.recipe")" = "$2" ]
}

# plugins_to_build PULUMI: the pinned plugins that `PULUMI plugin ls` does not
# list, or whose binary in our cache was built from another recipe (e.g. after
# an edit of scripts/toolchain/providers/). A plugin installed by other means
# (for instance the official binary) is left alone.
plugins_to_build() {
	local missing p name version out
	missing="$(missing_plugins "$1")"
	for p in "${PLUGINS[@]}"; do
		read -r name version <<<"$p"
		out="$PLUGIN_BIN_DIR/pulumi-resource-$name-$version"
		if [ "$FORCE" = 1 ] || grep -qxF "$p" <<<"$missing" ||
			{ [ -e "$out" ] && ! up_to_date "$out" "$(recipe_provider "$name" "$version")"; }; then
			printf '%s\n' "$p"
		fi
	done
}

cached_toolchain_complete() {
	up_to_date "$BIN_DIR/pulumi" "$(recipe_cli)" || return 1
	up_to_date "$BIN_DIR/pulumi-language-nodejs" "$(recipe_langhost)" || return 1
	[ -x "$BIN_DIR/pulumi-resource-pulumi-nodejs" ] || return 1
	[ -z "$(plugins_to_build "$BIN_DIR/pulumi")" ] || return 1
}

# ---------------------------------------------------------------------------
# --print-bin and the fast paths.

if [ "$MODE" = print ]; then
	if [ "$USE_SYSTEM" = 1 ] && dir="$(system_toolchain)"; then
		printf '%s\n' "$dir"
		exit 0
	fi
	printf '%s\n' "$BIN_DIR"
	if cached_toolchain_complete; then exit 0; else exit 3; fi
fi

if [ "$USE_SYSTEM" = 1 ] && [ "$FORCE" = 0 ] && dir="$(system_toolchain)"; then
	log "using pulumi v$PULUMI_VERSION from PATH ($dir) with docker v$DOCKER_PLUGIN_VERSION and random v$RANDOM_PLUGIN_VERSION plugins"
	printf '%s\n' "$dir"
	exit 0
fi

if cached_toolchain_complete; then
	log "pulumi v$PULUMI_VERSION toolchain is ready (cached)"
	printf '%s\n' "$BIN_DIR"
	exit 0
fi

# ---------------------------------------------------------------------------
# Build what is missing.

GO="${GO:-$(command -v go 2>/dev/null || echo /usr/local/go/bin/go)}"
[ -x "$GO" ] || die "no Go toolchain found (set GO=/path/to/go); Go is needed to build Pulumi from the Go module proxy"

mkdir -p "$BIN_DIR" "$PLUGIN_BIN_DIR"

# Serialise concurrent runs sharing a cache.
if command -v flock >/dev/null 2>&1; then
	exec 9>"$CACHE_ROOT/.lock"
	flock 9
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/pulumi-toolchain.XXXXXX")"
trap 'chmod -R u+w "$WORK" 2>/dev/null || true; rm -rf "$WORK"' EXIT

export GOTOOLCHAIN=local
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod"

log "Go: $("$GO" version) (GOPROXY=$("$GO" env GOPROXY))"

# go_fetch MODULE VERSION: download a module through the Go module proxy and
# print its (read-only) directory in the module cache.
go_fetch() {
	local mod="$1" ver="$2" out dir err
	mkdir -p "$WORK/fetch"
	[ -f "$WORK/fetch/go.mod" ] || printf 'module toolchain.invalid/fetch\n\ngo %s\n' "$TOOLCHAIN_GO_DIRECTIVE" >"$WORK/fetch/go.mod"
	out="$(cd "$WORK/fetch" && "$GO" mod download -json "$mod@$ver" 2>&1)" || true
	dir="$(printf '%s\n' "$out" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' | head -n1)"
	err="$(printf '%s\n' "$out" | sed -n 's/^[[:space:]]*"Error": "\(.*\)",\{0,1\}$/\1/p' | head -n1 |
		sed -e 's/\\n\\t/ /g' -e 's/\\n/ /g')"
	if [ -n "$err" ] || [ -z "$dir" ] || [ ! -d "$dir" ]; then
		[ -n "$err" ] || err="$out"
		die "the Go module proxy did not provide $mod@$ver: $err
  (GOPROXY=$("$GO" env GOPROXY); if only the checksum database is unreachable, retry with
   GONOSUMDB='github.com/pulumi/*,github.com/kreuzwerker/*,github.com/terraform-providers/*')"
	fi
	printf '%s\n' "$dir"
}

# copy_tree SRC DEST: writable copy of a (read-only) module cache directory.
copy_tree() {
	rm -rf "$2"
	mkdir -p "$(dirname "$2")"
	cp -r "$1" "$2"
	chmod -R u+w "$2"
}

# go_build DIR OUTPUT LDFLAGS PACKAGE: build atomically into OUTPUT.
go_build() {
	local dir="$1" out="$2" ldflags="$3" pkg="$4" logf
	logf="$WORK/build-$(basename "$out").log"
	if ! (cd "$dir" && "$GO" build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg") >"$logf" 2>&1; then
		grep -v '^go: downloading ' "$logf" | tail -n 40 >&2 || true
		if grep -q -E '(403 Forbidden|404 Not Found|410 Gone|module version is not available|unknown revision|invalid version)' "$logf"; then
			die "building $(basename "$out") failed: the Go module proxy refused a module (see the module@version above)"
		fi
		die "building $(basename "$out") failed (see above)"
	fi
	mv -f "$out.tmp" "$out"
}

# write_gomod DIR MODULE REQUIRE... : go.mod for one of our own small programs.
write_gomod() {
	local dir="$1" module="$2"
	shift 2
	{
		printf 'module %s\n\ngo %s\n\nrequire (\n' "$module" "$TOOLCHAIN_GO_DIRECTIVE"
		for req in "$@"; do printf '\t%s\n' "$req"; done
		printf ')\n'
	} >"$dir/go.mod"
}

START_ALL=$SECONDS
PKG_DIR=""
SDK_DIR=""

fetch_pulumi_sources() {
	[ -z "$PKG_DIR" ] || return 0
	log "fetching $PULUMI_PKG_MODULE@v$PULUMI_VERSION and $PULUMI_SDK_MODULE@v$PULUMI_VERSION ..."
	PKG_DIR="$(go_fetch "$PULUMI_PKG_MODULE" "v$PULUMI_VERSION")"
	SDK_DIR="$(go_fetch "$PULUMI_SDK_MODULE" "v$PULUMI_VERSION")"
}

# --- Pulumi CLI -------------------------------------------------------------
if ! up_to_date "$BIN_DIR/pulumi" "$(recipe_cli)"; then
	fetch_pulumi_sources
	t0=$SECONDS
	log "building pulumi v$PULUMI_VERSION (a cold build takes several minutes) ..."
	# pkg/v3's go.mod replaces sdk/v3 with ../sdk: lay both out side by side.
	copy_tree "$PKG_DIR" "$WORK/pulumi/pkg"
	copy_tree "$SDK_DIR" "$WORK/pulumi/sdk"
	go_build "$WORK/pulumi/pkg" "$BIN_DIR/pulumi" \
		"-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION" ./cmd/pulumi
	recipe_cli >"$BIN_DIR/pulumi.recipe"
	log "built pulumi v$PULUMI_VERSION in $((SECONDS - t0))s"
fi
got="$(pulumi_version "$BIN_DIR/pulumi")"
[ "$got" = "$PULUMI_VERSION" ] || die "$BIN_DIR/pulumi reports version '$got', expected $PULUMI_VERSION"

# --- Node.js language host and the scripts shipped in the SDK module ---------
if ! up_to_date "$BIN_DIR/pulumi-language-nodejs" "$(recipe_langhost)"; then
	fetch_pulumi_sources
	t0=$SECONDS
	log "building pulumi-language-nodejs v$PULUMI_VERSION ..."
	src="$WORK/langhost"
	mkdir -p "$src"
	cp "$TOOLCHAIN_DIR/langhost/main.go" "$src/"
	write_gomod "$src" toolchain.invalid/pulumi-language-nodejs "$PULUMI_SDK_MODULE v$PULUMI_VERSION"
	go_build "$src" "$BIN_DIR/pulumi-language-nodejs" "-X main.version=$PULUMI_VERSION" .
	recipe_langhost >"$BIN_DIR/pulumi-language-nodejs.recipe"
	log "built pulumi-language-nodejs in $((SECONDS - t0))s"
fi

if [ "$FORCE" = 1 ] || [ ! -x "$BIN_DIR/pulumi-resource-pulumi-nodejs" ]; then
	fetch_pulumi_sources
	# Helper scripts (dynamic providers, and policy packs where the SDK still
	# ships one) live in the sdk/v3 module under nodejs/dist/.
	found=0
	for f in "$SDK_DIR"/nodejs/dist/pulumi-*; do
		[ -f "$f" ] || continue
		case "$f" in *.cmd) continue ;; esac
		cp -f "$f" "$BIN_DIR/$(basename "$f")"
		chmod 755 "$BIN_DIR/$(basename "$f")"
		log "installed $(basename "$f") from $PULUMI_SDK_MODULE@v$PULUMI_VERSION"
		found=1
	done
	[ "$found" = 1 ] || die "no nodejs/dist/pulumi-* scripts in $PULUMI_SDK_MODULE@v$PULUMI_VERSION"
fi

# --- Resource plugins --------------------------------------------------------
build_provider() {
	local name="$1" version="$2" tfmod tfsrc tfver out dir src t0
	case "$name" in
	docker) tfmod="$DOCKER_TF_MODULE" tfsrc="$DOCKER_TF_SOURCE_MODULE" tfver="$DOCKER_TF_VERSION" ;;
	random) tfmod="$RANDOM_TF_MODULE" tfsrc="$RANDOM_TF_SOURCE_MODULE" tfver="$RANDOM_TF_VERSION" ;;
	*) die "unknown plugin $name" ;;
	esac
	out="$PLUGIN_BIN_DIR/pulumi-resource-$name-$version"
	if up_to_date "$out" "$(recipe_provider "$name" "$version")"; then
		return 0
	fi
	t0=$SECONDS
	log "fetching $tfsrc@$tfver (upstream Terraform $name provider) and $TF_BRIDGE_MODULE@$TF_BRIDGE_VERSION ..."
	dir="$(go_fetch "$tfsrc" "$tfver")"
	go_fetch "$TF_BRIDGE_MODULE" "$TF_BRIDGE_VERSION" >/dev/null
	go_fetch "$TF_PLUGIN_SDK_FORK_MODULE" "$TF_PLUGIN_SDK_FORK_VERSION" >/dev/null

	src="$WORK/provider-$name"
	copy_tree "$dir" "$src/upstream"
	mkdir -p "$src/upstream/pulumishim" "$src/plugin"
	cp "$TOOLCHAIN_DIR/providers/$name/shim/pulumishim.go" "$src/upstream/pulumishim/"
	cp "$TOOLCHAIN_DIR/providers/$name"/*.go "$src/plugin/"
	write_gomod "$src/plugin" "toolchain.invalid/pulumi-resource-$name" \
		"$TF_BRIDGE_MODULE $TF_BRIDGE_VERSION" \
		"$PULUMI_PKG_MODULE v$PULUMI_VERSION" \
		"$PULUMI_SDK_MODULE v$PULUMI_VERSION" \
		"$tfmod v0.0.0"
	printf '\nreplace %s => ../upstream\n\nreplace %s => %s %s\n' \
		"$tfmod" "$TF_PLUGIN_SDK_MODULE" "$TF_PLUGIN_SDK_FORK_MODULE" "$TF_PLUGIN_SDK_FORK_VERSION" \
		>>"$src/plugin/go.mod"

	log "building pulumi-resource-$name v$version (Terraform bridge $TF_BRIDGE_VERSION; a cold build takes several minutes) ..."
	go_build "$src/plugin" "$out" "-X main.version=$version" .
	recipe_provider "$name" "$version" >"$out.recipe"
	log "built pulumi-resource-$name v$version in $((SECONDS - t0))s"
}

install_plugin() {
	local name="$1" version="$2"
	# Replace whatever is installed at this version (a stale build of ours).
	"$BIN_DIR/pulumi" plugin rm resource "$name" "$version" --yes >/dev/null 2>&1 || true
	log "installing resource plugin $name v$version into ${PULUMI_HOME:-$HOME/.pulumi} ..."
	if ! "$BIN_DIR/pulumi" plugin install resource "$name" "$version" \
		--file "$PLUGIN_BIN_DIR/pulumi-resource-$name-$version" >&2; then
		die "pulumi plugin install resource $name $version --file $PLUGIN_BIN_DIR/pulumi-resource-$name-$version failed"
	fi
}

while read -r name version; do
	[ -n "${name:-}" ] || continue
	build_provider "$name" "$version"
	install_plugin "$name" "$version"
done <<<"$(plugins_to_build "$BIN_DIR/pulumi")"

still_missing="$(missing_plugins "$BIN_DIR/pulumi")"
[ -z "$still_missing" ] || die "plugins still not listed by 'pulumi plugin ls': $still_missing"

log "pulumi v$PULUMI_VERSION toolchain ready in $((SECONDS - START_ALL))s (plugins: docker v$DOCKER_PLUGIN_VERSION, random v$RANDOM_PLUGIN_VERSION)"
printf '%s\n' "$BIN_DIR"
