#!/usr/bin/env bash
# Shell settings for running plain `pulumi` on this project with its toolchain, e.g.
#
#   eval "$(bash toolchain/env.sh)"
#   npm run build
#   PULUMI_CONFIG_PASSPHRASE=hardened-fleet-local-demo pulumi preview -s staging
#
# Prints `export` lines: PATH (the toolchain's bin directory first), PULUMI_HOME (only for the
# built toolchain: the project-local home holding its plugins), PULUMI_BACKEND_URL (the
# project-local file backend the fleet CLI uses, unless PULUMI_BACKEND_URL is already set), and the
# offline switches the fleet CLI also sets. Builds nothing: exits 3 if the toolchain is missing.
set -euo pipefail
# shellcheck source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

if ! locate; then
	printf '%s\n' "$(not_built_message)" >&2
	exit 3
fi
q() { printf '%q' "$1"; }
printf 'export PATH=%s:"$PATH"\n' "$(q "$TC_BIN")"
[ -z "$TC_HOME" ] || printf 'export PULUMI_HOME=%s\n' "$(q "$TC_HOME")"
printf 'export PULUMI_BACKEND_URL=%s\n' "$(q "${PULUMI_BACKEND_URL:-file://$REPO_ROOT/.fleet/state}")"
printf 'export PULUMI_SKIP_UPDATE_CHECK=true\n'
printf 'export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true\n'
