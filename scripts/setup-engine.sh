#!/usr/bin/env bash
# Makes the local Docker engine ready for hardened-fleet, on a fresh machine or an existing one.
#   - installs docker.io (and debootstrap) with apt when they are missing
#   - starts dockerd when no engine answers
#   - builds the local base images when they are missing (debootstrap of Debian bookworm + docker import):
#       hardened-fleet/python-base:bookworm     runtime base: python3, nothing to build with
#       hardened-fleet/python-builder:bookworm  builder base: python3, pip, venv, gcc, headers
#   - makes the wheelhouse the image build installs from (no network inside the build)
# Quick when everything is already there. Set HF_SKIP_APT=1 to never call apt-get.
set -euo pipefail

log() { printf '[setup-engine] %s\n' "$*" >&2; }
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${HARDENED_FLEET_CACHE:-$HOME/.cache/hardened-fleet}
suite=bookworm
mirror=${HF_DEBIAN_MIRROR:-http://deb.debian.org/debian}
runtime_image=${HF_RUNTIME_BASE:-hardened-fleet/python-base:bookworm}
builder_image=${HF_BUILDER_BASE:-hardened-fleet/python-builder:bookworm}
# the edge proxy's base: Debian's caddy package (docs/edge.md)
edge_image=${HF_EDGE_BASE:-hardened-fleet/edge-base:bookworm}

apt_install() {
  [ "${HF_SKIP_APT:-0}" = 1 ] && { log "missing $*, and HF_SKIP_APT=1"; exit 1; }
  log "installing $* with apt-get"
  if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
    apt-get update -qq
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_tools() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
}

engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

ensure_engine() {
  if engine_answers; then return; fi
  if [ -n "${DOCKER_HOST:-}" ] && [ "${DOCKER_HOST#unix://}" = "$DOCKER_HOST" ]; then
    log "DOCKER_HOST=$DOCKER_HOST does not answer; start that engine, or unset DOCKER_HOST for the local one"
    exit 1
  fi
  log "starting dockerd (log: /var/log/hardened-fleet-dockerd.log)"
  # setsid: the daemon must outlive this script and the test run that started it
  # one network per customer: Docker's default pools give about 30 networks (/16 and /20 blocks);
  # /24 blocks of 172.20.0.0/14 give 1024 (docker0 keeps 172.17.0.0/16)
  setsid dockerd --default-address-pool "base=${HF_ADDRESS_POOL:-172.20.0.0/14},size=24" \
    >/var/log/hardened-fleet-dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    engine_answers && { log "engine is up"; return; }
    sleep 1
  done
  log "dockerd did not answer within 60s; last lines of its log:"
  tail -n 20 /var/log/hardened-fleet-dockerd.log >&2 || true
  exit 1
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# debootstrap a root filesystem with the given extra packages and import it as an image
import_rootfs() {
  local tag=$1 include=$2 dir
  dir=$(mktemp -d /var/tmp/hf-rootfs.XXXXXX)
  log "debootstrap $suite ($include) for $tag: a few minutes, once per machine"
  debootstrap --variant=minbase --include="$include" "$suite" "$dir" "$mirror" >"$dir.log" 2>&1 || {
    log "debootstrap failed; last lines:"; tail -n 20 "$dir.log" >&2; exit 1; }
  # the image is an OS base: leave no apt lists or caches in it
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb
  tar -C "$dir" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/sh"]' \
    - "$tag" >/dev/null
  rm -rf "$dir" "$dir.log"
  log "imported $tag"
}

ensure_base_images() {
  image_exists "$runtime_image" || import_rootfs "$runtime_image" python3
  image_exists "$builder_image" || import_rootfs "$builder_image" python3,python3-venv,python3-pip,python3-dev,gcc,make,libc6-dev
  image_exists "$edge_image" || import_rootfs "$edge_image" caddy,ca-certificates
}

ensure_wheelhouse() {
  local req=$here/examples/customer-app/requirements.txt wh=$here/examples/customer-app/wheelhouse
  local stamp=$wh/.requirements.sha256 sum
  sum=$(sha256sum "$req" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ]; then return; fi
  log "making the wheelhouse for $(basename "$req") on the host"
  rm -rf "$wh"; mkdir -p "$wh"
  python3 -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
    --python-version 3.11 --platform any --platform manylinux2014_x86_64 \
    -r "$req" -d "$wh"
  echo "$sum" >"$stamp"
}

ensure_tools
ensure_engine
ensure_base_images
ensure_wheelhouse
log "ready: engine $(docker version --format '{{.Server.Version}}'), bases $runtime_image, $builder_image, $edge_image"
