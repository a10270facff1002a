# Sourced by scripts/test.sh, scripts/demo.sh and `npm run bench`: puts Node.js 24 first on PATH
# (scripts/ensure-node.sh provides it from the npm registry when the machine's node is another
# version) and lets native addons build against its headers, offline.
_hf_node_bin="$(bash "$(dirname "${BASH_SOURCE[0]}")/ensure-node.sh")"
export PATH="$_hf_node_bin:$PATH"
if [ -f "$_hf_node_bin/../include/node/node_version.h" ]; then
	npm_config_nodedir="$(cd "$_hf_node_bin/.." && pwd)"
	export npm_config_nodedir
fi
unset _hf_node_bin
