#!/usr/bin/env bash
# Makes the local Docker engine ready for hardened-fleet, on a fresh machine or an existing one.
#   - installs docker.io (and debootstrap) with apt when they are missing
#   - starts dockerd when no engine answers
#   - builds the local base images when they are missing (debootstrap of Debian bookworm + docker import):
#       hardened-fleet/python-base:bookworm     runtime base: python3, nothing to build with
#       hardened-fleet/python-builder:bookworm  builder base: python3, pip, venv, gcc, headers
#       hardened-fleet/edge-base:bookworm       the edge proxy's base: Debian's caddy
#       hardened-fleet/backup-base:bookworm     the backup job's base: ca-certificates, openssh-client, socat
#       hardened-fleet/log-base:bookworm        the log collector's base: Debian's rsyslog and logrotate
#   - builds restic and rest-server from the Go module proxy (scripts/ensure-restic.sh, versions in
#     scripts/restic-versions.env; needs Go) and the backup job's image on the backup base, when it
#     is missing or its restic, base or Dockerfile changed (labels io.hardened-fleet.restic-sha256,
#     io.hardened-fleet.recipe-sha256):
#       hardened-fleet/backup:restic-<version>  /usr/local/bin/restic, USER 1000:1000, WORKDIR /tmp
#     (src/backup/assets/Dockerfile; src/backup/toolImage.ts copies it to other engines)
#   - makes the wheelhouse the image build installs from (no network inside the build)
#   - builds the vulnerability scanner trivy from the Go module proxy (scripts/ensure-trivy.sh, versions
#     in scripts/supply-chain-versions.env): staging makes every image's SBOM and scan with it, prod scans
#     before it promotes (docs/supply-chain.md); cold about 12 minutes on two cores, then cached
#   - builds gVisor's runsc from the Go module proxy (scripts/ensure-runsc.sh, version in
#     scripts/runsc-version.env; cold about 2 minutes) and registers it with the local engine as the
#     runtime "runsc" (--platform=systrap) in /etc/docker/daemon.json, which a dockerd started here
#     reads too; a running engine reloads it on SIGHUP (no restart). runc stays the default runtime:
#     `docker run --runtime runsc ...` opts in
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
# the backup job's base and image (src/backup/toolImage.ts: BACKUP_IMAGE)
backup_base=${HF_BACKUP_BASE:-hardened-fleet/backup-base:bookworm}
# the log collector's base (src/logs/assets/Dockerfile; docs/logs.md)
log_base=${HF_LOG_BASE:-hardened-fleet/log-base:bookworm}
# shellcheck source=restic-versions.env
. "$here/scripts/restic-versions.env"
backup_image=hardened-fleet/backup:restic-$RESTIC_VERSION
# shellcheck source=runsc-version.env
. "$here/scripts/runsc-version.env"
# read by every dockerd without --config-file: the one ensure_engine starts, and Debian's service
daemon_json=/etc/docker/daemon.json

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
  image_exists "$backup_base" || import_rootfs "$backup_base" ca-certificates,openssh-client,socat
  image_exists "$log_base" || import_rootfs "$log_base" rsyslog,logrotate
}

# the backup job's image: restic on the backup base; rebuilt when the binary, the base or the
# Dockerfile differs from what the image's labels record
ensure_backup_image() {
  local bin dockerfile=$here/src/backup/assets/Dockerfile restic_sum base_id recipe have ctx old_id
  bin=$(bash "$here/scripts/ensure-restic.sh" | tail -n 1)
  [ -x "$bin/restic" ] || { log "scripts/ensure-restic.sh gave no restic in '$bin'"; exit 1; }
  restic_sum=$(sha256sum "$bin/restic" | cut -d' ' -f1)
  base_id=$(docker image inspect --format '{{.Id}}' "$backup_base")
  recipe=$(printf '%s %s\n' "$base_id" "$(sha256sum "$dockerfile" | cut -d' ' -f1)" | sha256sum | cut -d' ' -f1)
  have=$(docker image inspect --format \
    '{{index .Config.Labels "io.hardened-fleet.restic-sha256"}} {{index .Config.Labels "io.hardened-fleet.recipe-sha256"}}' \
    "$backup_image" 2>/dev/null || true)
  [ "$have" = "$restic_sum $recipe" ] && return
  old_id=$(docker image inspect --format '{{.Id}}' "$backup_image" 2>/dev/null || true)
  log "building $backup_image (restic $RESTIC_VERSION on $backup_base)"
  ctx=$(mktemp -d /var/tmp/hf-backup-image.XXXXXX)
  install -m 0755 "$bin/restic" "$ctx/restic"
  cp "$dockerfile" "$ctx/Dockerfile"
  docker build --quiet --force-rm --tag "$backup_image" --build-arg BASE="$backup_base" \
    --build-arg RESTIC_VERSION="$RESTIC_VERSION" --build-arg RESTIC_SHA256="$restic_sum" \
    --build-arg RECIPE_SHA256="$recipe" "$ctx" >"$ctx.log" 2>&1 || {
    log "building $backup_image failed; last lines:"; tail -n 20 "$ctx.log" >&2; rm -rf "$ctx" "$ctx.log"; exit 1; }
  rm -rf "$ctx" "$ctx.log"
  # the image it replaces, unless a container still uses it
  [ -z "$old_id" ] || docker image rm "$old_id" >/dev/null 2>&1 || true
  log "built $backup_image ($(docker image inspect --format '{{.Size}}' "$backup_image" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
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

# the edge proxy's container sets net.ipv4.tcp_migrate_req (Linux 5.14+): without it a `caddy reload`
# can cut connections queued on the old config's socket (src/edge/edgeSpec.ts)
check_kernel() {
  [ -e /proc/sys/net/ipv4/tcp_migrate_req ] && return
  log "this kernel ($(uname -r)) has no net.ipv4.tcp_migrate_req (Linux 5.14 or later): the edge proxy needs it; upgrade the kernel"
  exit 1
}

ensure_scanner() {
  local bin
  bin=$(bash "$here/scripts/ensure-trivy.sh" | tail -n 1)
  [ -x "$bin/trivy" ] || { log "scripts/ensure-trivy.sh gave no trivy in '$bin'"; exit 1; }
  scanner="trivy $("$bin/trivy" --version 2>/dev/null | sed -n 's/^Version: //p')"
}

# runsc_registered PATH: the engine lists the runtime "runsc" as PATH with RUNSC_RUNTIME_ARGS
runsc_registered() {
  local runtimes
  runtimes=$(timeout 10 docker info --format '{{json .Runtimes}}' 2>/dev/null) || return 1
  python3 -c '
import json, sys
r = json.loads(sys.argv[1]).get("runsc") or {}
sys.exit(not (r.get("path") == sys.argv[2] and r.get("runtimeArgs") == sys.argv[3].split()))
' "$runtimes" "$1" "$RUNSC_RUNTIME_ARGS"
}

# the runtime "runsc" in daemon.json, merged into what is there (other keys and runtimes kept; the
# default runtime is not touched), written atomically; prints "changed" when it wrote the file
write_daemon_json() {
  python3 - "$daemon_json" "$1" "$RUNSC_RUNTIME_ARGS" <<'PY'
import json, os, sys, tempfile
f, path, args = sys.argv[1:4]
try:
    with open(f) as h:
        text = h.read()
    mode = os.stat(f).st_mode & 0o777
except FileNotFoundError:
    text, mode = "", 0o644
try:
    cfg = json.loads(text) if text.strip() else {}
except ValueError as e:
    sys.exit(f"{f} is not valid JSON ({e}); fix it, then run this again")
if not isinstance(cfg, dict) or not isinstance(cfg.setdefault("runtimes", {}), dict):
    sys.exit(f"{f}: expected a JSON object with an object \"runtimes\"")
want = {"path": path, "runtimeArgs": args.split()}
if cfg["runtimes"].get("runsc") == want:
    sys.exit(0)
cfg["runtimes"]["runsc"] = want
os.makedirs(os.path.dirname(f), exist_ok=True)
fd, tmp = tempfile.mkstemp(dir=os.path.dirname(f), prefix=".daemon.json.")
with os.fdopen(fd, "w") as h:
    json.dump(cfg, h, indent=2)
    h.write("\n")
os.chmod(tmp, mode)
os.replace(tmp, f)
print("changed")
PY
}

# gVisor's runsc as the local engine's runtime "runsc": built (scripts/ensure-runsc.sh), written to
# daemon.json, and the running dockerd reloads its runtimes on SIGHUP: containers, and the work of
# whoever else uses the engine, go on. Nothing to do when the engine already lists it.
ensure_runsc_runtime() {
  local bin runsc pid written
  case ${DOCKER_HOST:-unix:///var/run/docker.sock} in
    unix:///var/run/docker.sock | unix:///run/docker.sock) ;;
    *) log "DOCKER_HOST=$DOCKER_HOST: not this machine's default engine; the runtime runsc is not registered"
      runsc_state="no runtime runsc (DOCKER_HOST)"; return ;;
  esac
  runsc_state="runtime runsc $RUNSC_VERSION"
  bin=$(bash "$here/scripts/ensure-runsc.sh" | tail -n 1)
  runsc=$bin/runsc
  [ -x "$runsc" ] || { log "scripts/ensure-runsc.sh gave no runsc in '$bin'"; exit 1; }
  runsc_registered "$runsc" && return
  written=$(write_daemon_json "$runsc") || { log "could not write the runtime runsc to $daemon_json"; exit 1; }
  if [ "$written" = changed ]; then log "runtime runsc ($runsc $RUNSC_RUNTIME_ARGS) written to $daemon_json"; fi
  pid=$(cat /var/run/docker.pid 2>/dev/null || true)
  if [ -z "$pid" ] || [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != dockerd ]; then
    log "no dockerd at /var/run/docker.pid to reload; reload the engine (SIGHUP to dockerd) so it reads $daemon_json"
    exit 1
  fi
  # dockerd (20.10) reloads `runtimes` on SIGHUP; it then lists runc and daemon.json's runtimes
  # only, without its io.containerd.* aliases, until it next starts (nothing here names those)
  log "reloading dockerd (pid $pid, SIGHUP) for the runtime runsc"
  kill -HUP "$pid"
  for _ in $(seq 1 20); do
    runsc_registered "$runsc" && { log "runtime runsc registered: runsc $RUNSC_VERSION, $RUNSC_RUNTIME_ARGS"; return; }
    sleep 0.5
  done
  log "the engine does not list the runtime runsc after SIGHUP; its log's last lines:"
  tail -n 20 /var/log/hardened-fleet-dockerd.log >&2 2>/dev/null || true
  exit 1
}

check_kernel
ensure_tools
ensure_engine
ensure_base_images
ensure_wheelhouse
ensure_backup_image
ensure_scanner
ensure_runsc_runtime
log "ready: engine $(docker version --format '{{.Server.Version}}'), bases $runtime_image, $builder_image, $edge_image, $backup_base, $log_base; $backup_image; $scanner; $runsc_state"
