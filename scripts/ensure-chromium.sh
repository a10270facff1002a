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

apt_install() {
  # wait for another apt/dpkg run instead of failing at once
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=300 chromium >/dev/null
}

if [ ! -x "$browser" ]; then
  [ "${HF_SKIP_APT:-0}" = 1 ] && die "$browser is missing, and HF_SKIP_APT=1"
  command -v apt-get >/dev/null 2>&1 || die "$browser is missing and there is no apt-get: install Chromium, or set HF_CHROMIUM to its path"
  [ "$(id -u)" = 0 ] || die "$browser is missing: run as root to install Debian's chromium package"
  log "installing Debian's chromium package with apt-get"
  if ! apt_install; then
    # stale package lists (a version no longer on the mirror): refresh once and try again
    log "apt-get install failed; running apt-get update and trying again"
    apt-get update -qq -o DPkg::Lock::Timeout=300
    apt_install || die "apt-get install chromium failed"
  fi
  [ -x "$browser" ] || die "the chromium package is installed but $browser is not there (set HF_CHROMIUM to the browser's path)"
fi

# e.g. "Chromium 156.0.8078.114 built on Debian GNU/Linux 12 (bookworm)"; Debian's wrapper script
# may print a warning on stderr, which is dropped
"$browser" --version 2>/dev/null | head -n 1
