#!/usr/bin/env bash
# Find the Pulumi toolchain without building anything (what the fleet CLI and the tests run).
#
#   bash toolchain/locate.sh
#
# Prints three lines and exits 0:
#   source=system|built|override
#   bin=<directory holding pulumi and pulumi-language-nodejs>
#   home=<PULUMI_HOME to use; empty: the user's own PULUMI_HOME or ~/.pulumi>
# or, when there is none, says which command builds it on stderr and exits 3 (immediately).
#
# Order: HARDENED_FLEET_PULUMI_BIN (a bin directory, used as is); a user's official `pulumi` on
# PATH of at least PULUMI_VERSION with pulumi-language-nodejs and the pinned docker/random plugins
# in the user's Pulumi home (HARDENED_FLEET_NO_SYSTEM_PULUMI=1 skips it); the toolchain built by
# toolchain/build.sh, with the project-local Pulumi home <repo>/.fleet/pulumi-home.
set -euo pipefail
# shellcheck source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

if ! locate; then
	printf '%s\n' "$(not_built_message)" >&2
	exit 3
fi
printf 'source=%s\nbin=%s\nhome=%s\n' "$TC_SOURCE" "$TC_BIN" "$TC_HOME"
