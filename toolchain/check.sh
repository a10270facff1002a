#!/usr/bin/env bash
# Verify the Pulumi toolchain the project would use (`npm run toolchain:check`). Builds nothing.
#
#   - which toolchain is found (toolchain/locate.sh) and its Pulumi home
#   - `pulumi version` (>= PULUMI_VERSION; == for the built one) and `pulumi-language-nodejs -version`
#   - `go version -m`: the main module of pulumi, pulumi-language-nodejs and both plugins must be
#     the official one (toolchain/versions.env: *_MODULE), with its version
#   - `pulumi plugin ls` in that Pulumi home lists docker DOCKER_PLUGIN_VERSION and random
#     RANDOM_PLUGIN_VERSION, and each plugin, started over gRPC (`pulumi package get-schema`),
#     reports that version
#   - package.json pins @pulumi/pulumi, @pulumi/docker, @pulumi/random to the same versions
#     (and node_modules holds them, when installed)
# Exits 1 if anything is off, 3 if there is no toolchain at all.
set -euo pipefail
# shellcheck source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

FAILED=0
ok() { printf '  ok    %s\n' "$*"; }
bad() {
	printf '  FAIL  %s\n' "$*"
	FAILED=1
}
note() { printf '        %s\n' "$*"; }

if ! locate; then
	printf '%s\n' "$(not_built_message)" >&2
	exit 3
fi
PULUMI="$TC_BIN/pulumi"
echo "toolchain: $TC_SOURCE, bin $TC_BIN, PULUMI_HOME ${TC_HOME:-${PULUMI_HOME:-~/.pulumi} (your own)}"
pl() { if [ -n "$TC_HOME" ]; then PULUMI_HOME="$TC_HOME" "$@"; else "$@"; fi; }

# --- versions ---------------------------------------------------------------------------------
v="$(pulumi_version "$PULUMI")"
if [ "$TC_SOURCE" = built ] && [ "$v" != "$PULUMI_VERSION" ]; then
	bad "pulumi reports v$v, the build must be v$PULUMI_VERSION"
elif [ -n "$v" ] && version_ge "$v" "$PULUMI_VERSION"; then
	ok "pulumi v$v (pinned: >= v$PULUMI_VERSION)"
else
	bad "pulumi reports '$v', need >= v$PULUMI_VERSION"
fi
LANGHOST="$TC_BIN/pulumi-language-nodejs"
[ -x "$LANGHOST" ] || LANGHOST="$(command -v pulumi-language-nodejs 2>/dev/null || true)"
if [ -z "$LANGHOST" ]; then
	bad "no pulumi-language-nodejs next to pulumi or on PATH"
else
	lv="$("$LANGHOST" -version 2>/dev/null | head -n1 || true)"
	if [ "$TC_SOURCE" = built ] && [ "$lv" != "v$PULUMI_VERSION" ]; then bad "$LANGHOST -version: '$lv', expected v$PULUMI_VERSION"; else ok "pulumi-language-nodejs $lv ($LANGHOST)"; fi
fi

# --- go version -m ----------------------------------------------------------------------------
GO="${GO:-$(command -v go 2>/dev/null || echo /usr/local/go/bin/go)}"
modcheck() { # modcheck LABEL BINARY MODULE
	local label="$1" bin="$2" want="$3" info path mod
	if [ ! -x "$GO" ]; then
		note "$label: no go binary, \`go version -m\` skipped"
		return
	fi
	if ! info="$("$GO" version -m "$bin" 2>&1)"; then
		bad "$label: go version -m $bin: $info"
		return
	fi
	path="$(awk '$1 == "path" { print $2; exit }' <<<"$info")"
	mod="$(awk '$1 == "mod" { print $2, $3; exit }' <<<"$info")"
	if [ "${mod%% *}" = "$want" ]; then
		ok "$label: go version -m: path $path, mod $mod ($(head -n1 <<<"$info" | sed 's/^[^:]*: //'))"
	else
		bad "$label: go version -m: main module '${mod%% *}', expected $want (path $path)"
	fi
	local deps
	deps="$(awk '$1 == "dep" && ($2 == "github.com/pulumi/pulumi/sdk/v3" || $2 == "github.com/pulumi/pulumi-terraform-bridge/v3") { printf "%s%s %s", sep, $2, $3; sep = ", " }' <<<"$info")"
	[ -z "$deps" ] || note "built with $deps"
}
modcheck pulumi "$PULUMI" "$PULUMI_CLI_MODULE"
[ -z "$LANGHOST" ] || modcheck pulumi-language-nodejs "$LANGHOST" "$LANGHOST_MODULE"

# --- plugins ----------------------------------------------------------------------------------
listing="$(pl "$PULUMI" plugin ls 2>&1 || true)"
echo "  pulumi plugin ls (PULUMI_HOME=${TC_HOME:-${PULUMI_HOME:-~/.pulumi}}):"
sed -e 's/^/        /' <<<"$listing"
missing="$(if [ -n "$TC_HOME" ]; then missing_plugins "$PULUMI" "$TC_HOME"; else missing_plugins "$PULUMI"; fi)"
[ -z "$missing" ] && ok "plugin ls lists docker $DOCKER_PLUGIN_VERSION and random $RANDOM_PLUGIN_VERSION" ||
	bad "not listed by pulumi plugin ls: $(tr '\n' ' ' <<<"$missing")"
home="${TC_HOME:-${PULUMI_HOME:-$HOME/.pulumi}}"
for p in "docker $DOCKER_PLUGIN_VERSION $DOCKER_PROVIDER_MODULE" "random $RANDOM_PLUGIN_VERSION $RANDOM_PROVIDER_MODULE"; do
	read -r name version module <<<"$p"
	bin="$(installed_plugin "$home" "$name" "$version")"
	if [ ! -x "$bin" ]; then
		bad "$name: no plugin binary at $bin"
		continue
	fi
	modcheck "pulumi-resource-$name" "$bin" "$module"
	schema_version="$(pl env PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true "$PULUMI" package get-schema "$name@$version" 2>/dev/null |
		node -e 'let t="";process.stdin.on("data",d=>t+=d).on("end",()=>{try{console.log(JSON.parse(t).version??"")}catch{console.log("")}})' || true)"
	[ "$schema_version" = "$version" ] && ok "$name plugin started over gRPC, schema version $schema_version" ||
		bad "$name plugin: get-schema reports version '$schema_version', expected $version"
done

# --- npm pins ---------------------------------------------------------------------------------
for p in "@pulumi/pulumi $PULUMI_VERSION" "@pulumi/docker $DOCKER_PLUGIN_VERSION" "@pulumi/random $RANDOM_PLUGIN_VERSION"; do
	read -r pkg version <<<"$p"
	pinned="$(node -p "require('$REPO_ROOT/package.json').dependencies['$pkg'] ?? ''")"
	[ "$pinned" = "$version" ] && ok "package.json pins $pkg $pinned" || bad "package.json pins $pkg '$pinned', toolchain has $version"
	if [ -f "$REPO_ROOT/node_modules/$pkg/package.json" ]; then
		installed="$(node -p "require('$REPO_ROOT/node_modules/$pkg/package.json').version")"
		[ "$installed" = "$version" ] || bad "node_modules has $pkg $installed, toolchain has $version (run npm ci)"
	fi
done

if [ "$FAILED" = 0 ]; then echo "toolchain check: OK"; else
	echo "toolchain check: FAILED"
	exit 1
fi
