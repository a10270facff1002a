#!/usr/bin/env bash
# Makes Debian's chromium available for the status page's browser test (test/statusPage/browser.test.ts,
# driven by npm playwright-core, which downloads no browser of its own): installs the chromium package
# with apt when /usr/bin/chromium (or $HF_CHROMIUM) is missing. Nothing to do when it is there.
#
# The test starts its own headless chromium processes (with --no-sandbox when run as root) and
# reaches only 127.0.0.1.
#
# Prints the version on stdout. Set HF_SKIP_APT=1 to never call apt-get.
set -euo pipefail

log() { printf '[ensure-chromium] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

browser="${HF_CHROMIUM:-/usr/bin/chromium}"

# shellcheck source=apt-install.sh
. "$(dirname "$0")/apt-install.sh"

if [ ! -x "$browser" ]; then
  apt_package chromium "$browser is missing"
  [ -x "$browser" ] || die "the chromium package is installed but $browser is not there (set HF_CHROMIUM to the browser's path)"
fi

# e.g. "Chromium 156.0.8078.114 built on Debian GNU/Linux 12 (bookworm)"; Debian's wrapper script
# may print a warning on stderr, which is dropped
"$browser" --version 2>/dev/null | head -n 1
