# Sourced by scripts/ensure-*.sh: `apt_package <package> <what is missing>` installs one of Debian's
# packages (no recommends), waiting for another apt/dpkg run instead of failing, and refreshing stale
# package lists once when the install fails. Needs `log` and `die` of the sourcing script; honours
# HF_SKIP_APT=1 (never call apt-get).
apt_package() {
  local package=$1 missing=$2
  [ "${HF_SKIP_APT:-0}" = 1 ] && die "$missing, and HF_SKIP_APT=1"
  command -v apt-get >/dev/null 2>&1 || die "$missing and there is no apt-get: install Debian's $package package (or its equivalent)"
  [ "$(id -u)" = 0 ] || die "$missing: run as root to install Debian's $package package"
  log "installing Debian's $package package with apt-get"
  local install=(apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "$package")
  if ! DEBIAN_FRONTEND=noninteractive "${install[@]}" >/dev/null; then
    # stale package lists (a version no longer on the mirror): refresh once and try again
    log "apt-get install failed; running apt-get update and trying again"
    apt-get update -qq -o DPkg::Lock::Timeout=300
    DEBIAN_FRONTEND=noninteractive "${install[@]}" >/dev/null || die "apt-get install $package failed"
  fi
}
