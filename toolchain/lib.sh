# Shared by toolchain/build.sh, check.sh, locate.sh and env.sh (sourced, not run).
# Paths, pinned versions, and how an existing toolchain is found. Nothing here builds.

TOOLCHAIN_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$TOOLCHAIN_DIR/.." && pwd)"

# shellcheck source=versions.env
. "$TOOLCHAIN_DIR/versions.env"

# Built binaries, outside the repository and keyed by version (shared by every clone and worktree).
CACHE_ROOT="${HARDENED_FLEET_CACHE:-${HOME:?HOME is not set}/.cache/hardened-fleet}/toolchain-official/$PULUMI_VERSION"
BIN_DIR="$CACHE_ROOT/bin"             # pulumi, pulumi-language-nodejs, pulumi-resource-pulumi-nodejs, ...
PLUGIN_BIN_DIR="$CACHE_ROOT/plugins"  # pulumi-resource-docker, pulumi-resource-random (never on PATH)
# The project-local Pulumi home the built plugins are installed into. ~/.pulumi is never touched.
PROJECT_PULUMI_HOME="$REPO_ROOT/.fleet/pulumi-home"
# Official sources (read-only) and their build recipe.
THIRD_PARTY="${HARDENED_FLEET_THIRD_PARTY:-$REPO_ROOT/../shared/third_party}"
THIRD_PARTY="$(cd "$THIRD_PARTY" 2>/dev/null && pwd || printf '%s' "$THIRD_PARTY")"

PLUGINS=("docker $DOCKER_PLUGIN_VERSION" "random $RANDOM_PLUGIN_VERSION")
BUILD_COMMAND="npm run toolchain"

# Our own pulumi invocations never phone home.
export PULUMI_SKIP_UPDATE_CHECK=true

tc_log() { printf '[toolchain] %s\n' "$*" >&2; }
tc_die() {
	printf '[toolchain] ERROR: %s\n' "$*" >&2
	exit 1
}

# version_ge A B: A >= B (plain semver, "v" prefix allowed).
version_ge() {
	local a="${1#v}" b="${2#v}"
	[ "$(printf '%s\n%s\n' "$b" "$a" | sort -V | head -n1)" = "$b" ]
}

# pulumi_version PULUMI: the version a pulumi binary reports, without "v".
pulumi_version() {
	"$1" version 2>/dev/null | head -n1 | sed -e 's/^v//' || true
}

# missing_plugins PULUMI [HOME]: "name version" for each pinned resource plugin that
# `pulumi plugin ls` does not list (in HOME when given, else in the caller's PULUMI_HOME).
missing_plugins() {
	local pulumi="$1" home="${2:-}" listing p name version
	if [ -n "$home" ]; then
		listing="$(PULUMI_HOME="$home" "$pulumi" plugin ls 2>/dev/null)" || listing=""
	else
		listing="$("$pulumi" plugin ls 2>/dev/null)" || listing=""
	fi
	for p in "${PLUGINS[@]}"; do
		read -r name version <<<"$p"
		awk -v n="$name" -v v="$version" '$1 == n && $2 == "resource" && ($3 == v || $3 == "v" v) { found = 1 } END { exit !found }' \
			<<<"$listing" || printf '%s\n' "$p"
	done
}

# installed_plugin HOME NAME VERSION: path of the plugin binary inside a Pulumi home.
installed_plugin() {
	printf '%s/plugins/resource-%s-v%s/pulumi-resource-%s\n' "$1" "$2" "$3" "$2"
}

# system_toolchain: a user's own (official) pulumi on PATH, at least PULUMI_VERSION, with the Node.js
# language host and the pinned plugins in the user's own Pulumi home. Prints its bin directory.
system_toolchain() {
	[ "${HARDENED_FLEET_NO_SYSTEM_PULUMI:-0}" != 1 ] || return 1
	local pulumi dir version
	pulumi="$(command -v pulumi 2>/dev/null)" || return 1
	dir="$(cd "$(dirname "$pulumi")" && pwd)"
	# our own build on PATH (e.g. after `eval "$(toolchain/env.sh)"`) is the built toolchain
	[ "$(readlink -f "$dir")" != "$(readlink -f "$BIN_DIR" 2>/dev/null || printf '%s' "$BIN_DIR")" ] || return 1
	version="$(pulumi_version "$pulumi")"
	[ -n "$version" ] && version_ge "$version" "$PULUMI_VERSION" || return 1
	[ -x "$dir/pulumi-language-nodejs" ] || command -v pulumi-language-nodejs >/dev/null 2>&1 || return 1
	[ -z "$(missing_plugins "$pulumi")" ] || return 1
	printf '%s\n' "$dir"
}

# built_toolchain_ready: the cached build is complete and its plugins are installed in the
# project-local Pulumi home. File checks only: fast, runs nothing.
built_toolchain_ready() {
	local f p name version
	for f in pulumi pulumi-language-nodejs pulumi-resource-pulumi-nodejs; do
		[ -x "$BIN_DIR/$f" ] || return 1
	done
	for p in "${PLUGINS[@]}"; do
		read -r name version <<<"$p"
		[ -x "$PLUGIN_BIN_DIR/pulumi-resource-$name" ] || return 1
		[ -x "$(installed_plugin "$PROJECT_PULUMI_HOME" "$name" "$version")" ] || return 1
	done
}

# locate: sets TC_SOURCE (override|system|built), TC_BIN and TC_HOME (empty: the user's own
# PULUMI_HOME or ~/.pulumi). Returns 1 when no usable toolchain exists.
locate() {
	TC_SOURCE="" TC_BIN="" TC_HOME=""
	if [ -n "${HARDENED_FLEET_PULUMI_BIN:-}" ]; then
		TC_SOURCE=override TC_BIN="$HARDENED_FLEET_PULUMI_BIN" TC_HOME="${PULUMI_HOME:-}"
		return 0
	fi
	if TC_BIN="$(system_toolchain)"; then
		TC_SOURCE=system TC_HOME=""
		return 0
	fi
	if built_toolchain_ready; then
		TC_SOURCE=built TC_BIN="$BIN_DIR" TC_HOME="$PROJECT_PULUMI_HOME"
		return 0
	fi
	TC_BIN=""
	return 1
}

not_built_message() {
	printf 'the Pulumi toolchain (pulumi >= v%s with pulumi-language-nodejs, plugins docker %s and random %s) is not built: run `%s` (or `bash toolchain/build.sh`) to build it' \
		"$PULUMI_VERSION" "$DOCKER_PLUGIN_VERSION" "$RANDOM_PLUGIN_VERSION" "$BUILD_COMMAND"
}
