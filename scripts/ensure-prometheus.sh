#!/usr/bin/env bash
# Makes `prometheus` and `promtool` available for the tests of the shipped scrape config and alert
# rules (docs/prometheus/, test/watch/prometheusRules.test.ts): installs Debian's prometheus package
# (bookworm: 2.42.0) with apt when either is missing. Nothing to do when both are on PATH.
#
# The tests run their own prometheus processes (test/support/prometheus.ts: a temporary config and
# data directory, a free port on 127.0.0.1), never the package's service. Whether that service runs
# (prometheus.service on :9090) is left to the machine: in a container, policy-rc.d usually keeps
# it from starting; under systemd it starts, and nothing here uses it.
#
# Prints the versions on stdout. Set HF_SKIP_APT=1 to never call apt-get.
set -euo pipefail

log() { printf '[ensure-prometheus] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

have_all() { command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; }

# shellcheck source=apt-install.sh
. "$(dirname "$0")/apt-install.sh"

if ! have_all; then
  apt_package prometheus "prometheus or promtool is missing"
  have_all || die "the prometheus package is installed but prometheus or promtool is not on PATH ($PATH)"
  if [ -d /run/systemd/system ] && systemctl is-active --quiet prometheus.service 2>/dev/null; then
    log "note: the package started prometheus.service (:9090); the tests do not use it"
  fi
fi

# first lines are e.g. "prometheus, version 2.42.0+ds (branch: debian/sid, revision: ...)"
prometheus --version 2>&1 | head -n 1
promtool --version 2>&1 | head -n 1
