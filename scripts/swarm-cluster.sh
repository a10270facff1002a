#!/usr/bin/env bash
# A test Docker Swarm of four engines on this one machine, plus an image registry on the manager;
# node 4 is a gVisor sandbox node (its engine's default runtime is runsc).
#
#   scripts/swarm-cluster.sh up            make it (idempotent); prints the path of cluster.json
#   scripts/swarm-cluster.sh down          remove everything (idempotent, also when partly up)
#   scripts/swarm-cluster.sh stop-node N   stop node N's engine (1-4; SIGTERM, wait for it to exit)
#   scripts/swarm-cluster.sh start-node N  start it again; waits until it answers and is Ready
#   scripts/swarm-cluster.sh status        the nodes and the cluster.json path; non-zero if not up
#   scripts/swarm-cluster.sh env           the cluster.json path; non-zero if not up
#
# Its environment stack file: node dist/demo/swarm.js env-file --cluster <cluster.json> [--env E]
# [--promote-from E]; a demo on it: npm run demo:swarm (node dist/demo/swarm.js demo --cluster ...).
#
# Environment:
#   HF_SWARM_CLUSTER  cluster name (default hfsw): 1-12 of [a-z0-9-], starting with a letter
#   HF_SWARM_SUBNET   second octet of the cluster's private 10.X.0.0/16 (default 231)
#   HF_SWARM_KEEP_LOGS=1  down keeps the engines' and the registry's logs in /var/log
#   HF_SKIP_APT=1     never call apt-get (fail when a tool is missing)
#
# Layout (docs/swarm-cluster.md has the picture): a "lan" namespace <C>-lan holds a bridge; node
# namespaces <C>-1..4 each have one veth (eth0, 10.X.0.11..14/24) plugged into it, and no default
# route, so no packet can leave the cluster. The host's own namespace gets one veth on that bridge
# (hf-<C>, 10.X.0.1/24), as an operator's fleet host is on its registry's network: fleet reads and
# writes signatures and SBOMs beside the images in the registry (docs/supply-chain.md). Each node runs its own dockerd (own data-root, exec-root, socket, cgroup parent, UTS
# namespace with hostname <C>-N, mount namespace); node 1 is the swarm manager and also runs the
# registry (Debian's docker-registry) on 10.X.0.11:5000, plain HTTP. Nodes 2-4 are workers; node 4
# is a sandbox node: its engine's default runtime is gVisor's runsc (scripts/ensure-runsc.sh builds
# it), it carries the node label hardened-fleet.sandbox=gvisor, and cluster.json says "sandbox":
# "gvisor" for it, so only sandboxed plans' customers go there (docs/sandbox.md).
set -euo pipefail

readonly LOCK_FILE=/tmp/hf-swarm-cluster.lock
readonly NODES=(1 2 3 4)
# the sandbox nodes: their engine's default runtime is runsc (gVisor); the others keep runc
readonly SANDBOX_NODES=(4)
readonly HOST_ENGINE=unix:///var/run/docker.sock
here=$(cd "$(dirname "$0")/.." && pwd)

log() { printf '[swarm-cluster %s] %s\n' "${C:-?}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------

C=${HF_SWARM_CLUSTER:-hfsw}
# the name ends up in namespace names, hostnames, cgroup paths and file names: keep it a short label
[[ $C =~ ^[a-z][a-z0-9-]{0,10}[a-z0-9]$ || $C =~ ^[a-z]$ ]] ||
  die "HF_SWARM_CLUSTER='$C': use 1-12 characters of a-z, 0-9 and '-', starting with a letter"
IDX=${HF_SWARM_SUBNET:-231}
if ! [[ $IDX =~ ^[0-9]{1,3}$ ]] || [ "$((10#$IDX))" -lt 1 ] || [ "$((10#$IDX))" -gt 254 ]; then
  die "HF_SWARM_SUBNET='$IDX': use a number from 1 to 254 (the X of 10.X.0.0/16)"
fi
IDX=$((10#$IDX))
# a cluster that is up keeps the subnet it was made with (stop-node/start-node/status without the
# variable find it); asking for another one is an error until down
if recorded=$(cat "/run/hf-swarm/$C/subnet" 2>/dev/null) && [ -n "$recorded" ] && [ "$recorded" != "$IDX" ]; then
  if [ -n "${HF_SWARM_SUBNET:-}" ] && [ "${1:-}" != down ]; then
    die "cluster $C is up with HF_SWARM_SUBNET=$recorded, not $IDX: run down first"
  fi
  IDX=$recorded
fi

# Addresses. 10.X.0.0/16 exists only inside this cluster's namespaces, but for the host's route to
# the LAN (10.X.0.0/24 on its veth): two clusters up at once need different X.
readonly LAN_PREFIX=10.$IDX.0              # the LAN: 10.X.0.0/24, node N is 10.X.0.(10+N)
readonly BIP=10.$IDX.1.1/24                # docker0 of each engine (each in its own namespace)
readonly LOCAL_POOL=10.$IDX.64.0/18        # engines' local networks (docker_gwbridge, bridges): /24s
readonly SWARM_POOL=10.$IDX.128.0/17       # swarm overlay networks: /24s
node_ip() { echo "$LAN_PREFIX.$((10 + $1))"; }
# "gvisor" for a sandbox node, "none" for the others
node_sandbox() {
  local s
  for s in "${SANDBOX_NODES[@]}"; do [ "$s" = "$1" ] && { echo gvisor; return; }; done
  echo none
}
readonly MANAGER_IP=$LAN_PREFIX.11
readonly REGISTRY=$MANAGER_IP:5000

readonly LAN_NS=$C-lan
readonly HOST_VETH=hf-$C                    # the host's end of its veth on the LAN (at most 15 characters)
node_ns() { echo "$C-$1"; }                 # also the node's hostname and swarm node name
readonly STATE=/var/lib/hf-swarm/$C         # data-roots and registry storage
readonly RUN=/run/hf-swarm/$C               # exec-roots, pidfiles, sockets, configs, cluster.json
readonly CLUSTER_JSON=$RUN/cluster.json
node_sock() { echo "$RUN/node$1.sock"; }
node_host() { echo "unix://$(node_sock "$1")"; }
node_log() { echo "/var/log/hf-swarm-$C-node$1.log"; }
readonly REGISTRY_LOG=/var/log/hf-swarm-$C-registry.log
# cgroup v1 with the cgroupfs driver: every engine would put its containers under /docker, next to
# the host engine's; a parent of its own per node keeps them apart and lets down find strays
node_cgroup() { echo "/hf-swarm/$C/node$1"; }

# the local base images pushed into the registry: registry name -> host engine image
declare -A BASES=(
  [python-base]=${HF_RUNTIME_BASE:-hardened-fleet/python-base:bookworm}
  [python-builder]=${HF_BUILDER_BASE:-hardened-fleet/python-builder:bookworm}
  [edge-base]=${HF_EDGE_BASE:-hardened-fleet/edge-base:bookworm}
  [log-base]=${HF_LOG_BASE:-hardened-fleet/log-base:bookworm}
)
readonly BASE_ORDER=(python-base python-builder edge-base log-base)

# docker CLI on one node's engine (never the host's: DOCKER_HOST is always overridden)
dk() { local n=$1; shift; DOCKER_HOST=$(node_host "$n") docker "$@"; }
host_dk() { DOCKER_HOST=$HOST_ENGINE docker "$@"; }
# run a command inside a namespace's network only (keeps the host's mounts, unlike ip netns exec)
in_ns() { local ns=$1; shift; nsenter --net="/run/netns/$ns" -- "$@"; }

# a process that has exited but is not yet reaped (a zombie: its parent is init, once this script
# has gone) still answers kill -0; it counts as gone
proc_alive() {
  local state
  state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}
proc_gone() { ! proc_alive "$1"; }

# serialize up/down/stop/start of all clusters on this machine
take_lock() {
  exec 9>"$LOCK_FILE"
  if ! flock -n 9; then
    log "waiting for another swarm-cluster.sh (lock $LOCK_FILE)"
    flock 9
  fi
}

# wait_for SECONDS DESCRIPTION COMMAND...: retry COMMAND every half second
wait_for() {
  local secs=$1 what=$2 deadline; shift 2
  deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || { log "timed out after ${secs}s waiting for $what"; return 1; }
    sleep 0.5
  done
}

# ---------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------

ensure_tools() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
  command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
  command -v ip >/dev/null 2>&1 || missing+=(iproute2)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  for t in nsenter unshare setsid flock; do
    command -v $t >/dev/null 2>&1 || { missing+=(util-linux); break; }
  done
  [ ${#missing[@]} -eq 0 ] && return
  [ "${HF_SKIP_APT:-0}" = 1 ] && die "missing ${missing[*]}, and HF_SKIP_APT=1"
  log "installing ${missing[*]} with apt-get"
  if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
    apt-get update -qq >&2 9>&-
  fi
  # docker-registry's package starts a registry on the host's port 5000 where an init system lets
  # it; this cluster runs its own, so forbid service starts during the install when nothing does
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; made_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 9>&- || {
    [ $made_policy = 1 ] && rm -f "$policy"; die "apt-get install ${missing[*]} failed"; }
  [ $made_policy = 1 ] && rm -f "$policy"
  return 0
}

# the host engine and its base images come from setup-engine.sh (quick when all is there)
ensure_host_engine() {
  local ok=1 name
  timeout 10 env DOCKER_HOST=$HOST_ENGINE docker info >/dev/null 2>&1 || ok=0
  if [ $ok = 1 ]; then
    for name in "${BASE_ORDER[@]}"; do
      host_dk image inspect "${BASES[$name]}" >/dev/null 2>&1 || { ok=0; break; }
    done
  fi
  [ $ok = 1 ] && return
  log "host engine or base images missing: running scripts/setup-engine.sh"
  # 9>&-: a host dockerd that setup-engine.sh starts must not inherit (and hold) the lock
  env -u DOCKER_HOST bash "$here/scripts/setup-engine.sh" 9>&-
}

# ---------------------------------------------------------------------------------------------
# Network: namespaces, bridge, veths
# ---------------------------------------------------------------------------------------------

ns_exists() { [ -e "/run/netns/$1" ] && ip -n "$1" link show lo >/dev/null 2>&1; }

ensure_ns() {
  local ns=$1
  if [ -e "/run/netns/$ns" ] && ! ns_exists "$ns"; then
    ip netns del "$ns" 2>/dev/null || rm -f "/run/netns/$ns"   # stale file, e.g. after a reboot
  fi
  ns_exists "$ns" || ip netns add "$ns"
  ip -n "$ns" link set lo up
}

ensure_network() {
  ensure_ns "$LAN_NS"
  if ! ip -n "$LAN_NS" link show br0 >/dev/null 2>&1; then
    ip -n "$LAN_NS" link add br0 type bridge
  fi
  ip -n "$LAN_NS" link set br0 up
  local n ns
  for n in "${NODES[@]}"; do
    ns=$(node_ns "$n")
    ensure_ns "$ns"
    # one veth per node: "nN" on the bridge in the lan namespace, "eth0" in the node namespace
    if ! ip -n "$ns" link show eth0 >/dev/null 2>&1; then
      ip -n "$LAN_NS" link del "n$n" 2>/dev/null || true
      ip -n "$LAN_NS" link add "n$n" type veth peer name eth0 netns "$ns"
    fi
    ip -n "$LAN_NS" link set "n$n" master br0 up
    ip -n "$ns" addr replace "$(node_ip "$n")/24" dev eth0
    ip -n "$ns" link set eth0 up
  done
  # the host on the LAN (10.X.0.1): no other interface of the host may route that subnet
  local other
  other=$(ip -o route show to "$LAN_PREFIX.0/24" | grep -v " dev $HOST_VETH " || true)
  [ -z "$other" ] || die "the host already routes $LAN_PREFIX.0/24 ($other): choose another HF_SWARM_SUBNET"
  if ! ip link show "$HOST_VETH" >/dev/null 2>&1; then
    ip -n "$LAN_NS" link del host 2>/dev/null || true
    ip link add "$HOST_VETH" type veth peer name host netns "$LAN_NS"
  fi
  ip -n "$LAN_NS" link set host master br0 up
  ip addr replace "$LAN_PREFIX.1/24" dev "$HOST_VETH"
  ip link set "$HOST_VETH" up
}

# ---------------------------------------------------------------------------------------------
# Engines
# ---------------------------------------------------------------------------------------------

# pid of node N's dockerd when it runs (checked against its config path, not only the pidfile)
engine_pid() {
  local pidfile=$RUN/node$1/dockerd.pid pid cmdline
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *"$RUN/node$1/daemon.json"* ]] || return 1
  echo "$pid"
}

engine_answers() { timeout 10 env DOCKER_HOST="$(node_host "$1")" docker version >/dev/null 2>&1; }

# gVisor's runsc, for the sandbox nodes' engines: built once by scripts/ensure-runsc.sh (about 3
# minutes cold, then cached); RUNSC is the binary's path, found on first use.
# shellcheck source=runsc-version.env
. "$here/scripts/runsc-version.env"
RUNSC=""
ensure_runsc() {
  [ -z "$RUNSC" ] || return 0
  local bin
  # 9>&-: a build must not hold the lock
  bin=$(bash "$here/scripts/ensure-runsc.sh" 9>&- | tail -n 1) || die "scripts/ensure-runsc.sh failed"
  [ -x "$bin/runsc" ] || die "scripts/ensure-runsc.sh gave no runsc in '$bin'"
  RUNSC=$bin/runsc
}

write_engine_config() {
  local n=$1 dir=$RUN/node$1 sandbox=""
  mkdir -p "$dir" "$STATE/node$n"
  # a sandbox node: runsc is its engine's default runtime, so a Swarm task (which names no runtime)
  # runs in a gVisor sandbox; fleet's own containers there name runc. runsc runs with the arguments
  # the host engine's has (RUNSC_RUNTIME_ARGS: runsc-version.env says why not --oci-seccomp)
  if [ "$(node_sandbox "$n")" = gvisor ]; then
    ensure_runsc
    local args
    # shellcheck disable=SC2086 # one argument per word
    args=$(printf '"%s", ' $RUNSC_RUNTIME_ARGS)
    sandbox=$(printf '\n  "default-runtime": "runsc",\n  "runtimes": {"runsc": {"path": "%s", "runtimeArgs": [%s]}},' "$RUNSC" "${args%, }")
  fi
  # all settings in a config file of its own: the host's /etc/docker/daemon.json is never read,
  # and a restart uses exactly the same settings
  cat >"$dir/daemon.json" <<EOF
{
  "hosts": ["$(node_host "$n")"],$sandbox
  "data-root": "$STATE/node$n",
  "exec-root": "$dir/exec",
  "pidfile": "$dir/dockerd.pid",
  "deprecated-key-path": "$STATE/node$n/key.json",
  "cgroup-parent": "$(node_cgroup "$n")",
  "insecure-registries": ["$REGISTRY"],
  "no-new-privileges": true,
  "bip": "$BIP",
  "default-address-pools": [{"base": "$LOCAL_POOL", "size": 24}],
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m", "max-file": "2"}
}
EOF
}

# In the node's network namespace, plus new UTS and mount namespaces:
#  - UTS: the engine's hostname is the swarm node name (<C>-N), so nodes differ;
#  - mount: a sysfs of the node's network namespace (as ip netns exec does, but ip netns exec loses
#    the cgroup mounts under /sys/fs/cgroup, and dockerd needs them: they are moved over), and the
#    engine's own mounts (container root filesystems, network namespaces) stay out of the host's
#    mount table and vanish with the engine. Propagation is slave: host mounts still show inside.
#  - a system containerd socket (/run/containerd/containerd.sock) would make every engine share
#    one containerd; it is hidden so that each dockerd starts its own.
# shellcheck disable=SC2016
readonly ENGINE_WRAPPER='
set -e
hostname "$1"
hold=$2
mkdir -p "$hold"
mount --rbind /sys/fs/cgroup "$hold"
umount -l /sys
mount -t sysfs sysfs /sys
mount --move "$hold" /sys/fs/cgroup
if [ -S /run/containerd/containerd.sock ]; then mount -t tmpfs -o mode=0711 tmpfs /run/containerd; fi
exec dockerd --config-file "$3"
'

# After an engine was killed (not stopped), its containerd dies too but may not be reaped yet, and
# a new dockerd that finds containerd's pid file with a pid that still "exists" waits for that
# containerd's socket instead of starting its own, and gives up after a minute. So: a containerd of
# this node that still runs without its dockerd is stopped, and a stale pid file removed.
clear_stale_containerd() {
  local pidfile=$RUN/node$1/exec/containerd/containerd.pid pid deadline
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if [[ $pid =~ ^[0-9]+$ ]] && proc_alive "$pid" &&
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = containerd ] &&
    [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == *"$RUN/node$1/exec/containerd/"* ]]; then
    log "stopping the containerd (pid $pid) that node $1's killed engine left"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 15))
    while proc_alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.3; done
    proc_alive "$pid" && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$pidfile"
}

start_engine() {
  local n=$1 ns dir
  ns=$(node_ns "$n"); dir=$RUN/node$n
  if engine_pid "$n" >/dev/null; then return; fi
  clear_stale_containerd "$n"
  write_engine_config "$n"
  rm -f "$dir/dockerd.pid" "$(node_sock "$n")"
  log "starting the engine of $ns ($(node_ip "$n")), log $(node_log "$n")"
  printf '\n==== %s start\n' "$(date -u +%FT%TZ)" >>"$(node_log "$n")"
  # setsid: the engine must outlive this script
  setsid nsenter --net="/run/netns/$ns" -- unshare --uts --mount --propagation slave -- \
    sh -c "$ENGINE_WRAPPER" hf-swarm-engine "$ns" "$dir/sys-hold" "$dir/daemon.json" \
    >>"$(node_log "$n")" 2>&1 </dev/null 9>&- &
}

wait_engine() {
  local n=$1
  wait_for 60 "the engine of $(node_ns "$n")" engine_answers "$n" || {
    log "last lines of $(node_log "$n"):"; tail -n 25 "$(node_log "$n")" >&2 || true; return 1; }
}

# SIGTERM (an ordinary engine stop: it stops its containers), then wait for the process to end
stop_engine() {
  local n=$1 pid deadline
  pid=$(engine_pid "$n") || return 0
  log "stopping the engine of $(node_ns "$n") (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || return 0
  deadline=$((SECONDS + 90))
  while proc_alive "$pid"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "the engine of $(node_ns "$n") did not stop within 90s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 1
      break
    fi
    sleep 0.3
  done
  log "the engine of $(node_ns "$n") stopped after $((SECONDS - deadline + 90))s"
}

# ---------------------------------------------------------------------------------------------
# Registry (Debian's docker-registry, i.e. distribution 2.8) in node 1's network namespace
# ---------------------------------------------------------------------------------------------

registry_pid() {
  local pid
  pid=$(cat "$RUN/registry.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = docker-registry ] || return 1
  echo "$pid"
}

registry_answers() {
  ns_exists "$(node_ns 1)" || return 1
  in_ns "$(node_ns 1)" curl -fs -m 5 -o /dev/null "http://$REGISTRY/v2/"
}

start_registry() {
  if registry_pid >/dev/null; then return; fi
  mkdir -p "$STATE/registry" "$RUN"
  cat >"$RUN/registry.yml" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $STATE/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY
  secret: $(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
EOF
  log "starting the registry on $REGISTRY, log $REGISTRY_LOG"
  printf '\n==== %s start\n' "$(date -u +%FT%TZ)" >>"$REGISTRY_LOG"
  # shellcheck disable=SC2016
  setsid nsenter --net="/run/netns/$(node_ns 1)" -- \
    sh -c 'echo $$ >"$1"; exec docker-registry serve "$2"' hf-swarm-registry \
    "$RUN/registry.pid" "$RUN/registry.yml" >>"$REGISTRY_LOG" 2>&1 </dev/null 9>&- &
}

# until it answers; fails at once when the process has ended (e.g. its address is taken)
wait_registry() {
  local deadline=$((SECONDS + 30)) pid
  until registry_answers; do
    pid=$(cat "$RUN/registry.pid" 2>/dev/null || true)   # written just before the exec
    if { [ -n "$pid" ] && proc_gone "$pid"; } || [ "$SECONDS" -ge "$deadline" ]; then
      log "the registry on $REGISTRY does not answer; last lines of $REGISTRY_LOG:"
      tail -n 20 "$REGISTRY_LOG" >&2
      return 1
    fi
    sleep 0.5
  done
}

stop_registry() {
  local pid started=$SECONDS
  pid=$(registry_pid) || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  wait_for 20 "the registry to stop" proc_gone "$pid" || kill -KILL "$pid" 2>/dev/null || true
  log "the registry stopped after $((SECONDS - started))s"
}

# ---------------------------------------------------------------------------------------------
# Base images: host engine -> registry, with skopeo (its docker-daemon transport reads the host
# engine's socket; the copy runs in node 1's namespace, where the registry's address is)
# ---------------------------------------------------------------------------------------------

# push one base unless the same host image was pushed before and the registry still has it;
# leaves "<host image id> <digest>" in $RUN/bases/<name>
push_base() {
  local name=$1 src=${BASES[$1]} id rec digest tmp
  mkdir -p "$RUN/bases"
  id=$(host_dk image inspect --format '{{.Id}}' "$src")
  rec=$RUN/bases/$name
  if [ -f "$rec" ] && [ "$(cut -d' ' -f1 "$rec")" = "$id" ]; then
    digest=$(cut -d' ' -f2 "$rec")
    if in_ns "$(node_ns 1)" curl -fsS -m 10 -o /dev/null -I \
      -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
      "http://$REGISTRY/v2/hardened-fleet/$name/manifests/$digest"; then
      return 0
    fi
  fi
  tmp=$(mktemp "$RUN/bases/.$name.XXXXXX")
  log "pushing $src to $REGISTRY/hardened-fleet/$name:bookworm"
  # --insecure-policy: a local copy of our own image, no signature policy applies;
  # compression level 1: most of the time is gzip, and the LAN is not a bottleneck
  in_ns "$(node_ns 1)" skopeo --insecure-policy copy --quiet \
    --src-daemon-host "$HOST_ENGINE" --dest-tls-verify=false --dest-compress-level 1 \
    --digestfile "$tmp" "docker-daemon:$src" "docker://$REGISTRY/hardened-fleet/$name:bookworm" >&2
  digest=$(cat "$tmp"); rm -f "$tmp"
  [[ $digest =~ ^sha256:[0-9a-f]{64}$ ]] || die "skopeo gave no digest for $name"
  echo "$id $digest" >"$rec"
}

# all at once: each is a single gzip stream, so two cores are used
push_bases() {
  local name pids=() failed=0 i=0
  for name in "${BASE_ORDER[@]}"; do
    push_base "$name" & pids+=($!)
  done
  for name in "${BASE_ORDER[@]}"; do
    wait "${pids[$i]}" || { log "pushing $name failed"; failed=1; }
    i=$((i + 1))
  done
  [ $failed = 0 ]
}

# The manager builds the images (staging's app, the edge proxy) FROM these bases by digest, and every
# node its log collector FROM the log base. The engine's BuildKit (docker.io 20.10) resolves a FROM
# over HTTPS whatever insecure-registries says, but uses an image the engine has: pulled by the
# engine itself (which honours it), they build.
pull_base() {
  local n=$1 name=$2 digest
  digest=$(cut -d' ' -f2 "$RUN/bases/$name")
  dk "$n" image inspect "$REGISTRY/hardened-fleet/$name@$digest" >/dev/null 2>&1 && return 0
  log "pulling $name on $(node_ns "$n") (its builds start FROM it)"
  dk "$n" pull -q "$REGISTRY/hardened-fleet/$name@$digest" >/dev/null
}

pull_bases_on_nodes() {
  local name n
  for name in "${BASE_ORDER[@]}"; do
    [ "$name" = log-base ] && continue
    pull_base 1 "$name"
  done
  for n in "${NODES[@]}"; do pull_base "$n" log-base; done
}

# ---------------------------------------------------------------------------------------------
# Swarm
# ---------------------------------------------------------------------------------------------

swarm_state() { dk "$1" info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null || echo unknown; }
swarm_active() { [ "$(swarm_state "$1")" = active ]; }

ensure_swarm() {
  if [ "$(swarm_state 1)" != active ]; then
    log "swarm init on $(node_ns 1)"
    dk 1 swarm init --advertise-addr "$MANAGER_IP" --listen-addr "$MANAGER_IP:2377" \
      --default-addr-pool "$SWARM_POOL" --default-addr-pool-mask-length 24 >/dev/null
  fi
  remove_ingress
  local n token=""
  for n in "${NODES[@]:1}"; do
    [ "$(swarm_state "$n")" = active ] && continue
    [ -n "$token" ] || token=$(dk 1 swarm join-token -q worker)
    log "$(node_ns "$n") joins the swarm"
    dk "$n" swarm join --token "$token" --advertise-addr "$(node_ip "$n")" \
      --listen-addr "$(node_ip "$n"):2377" "$MANAGER_IP:2377" >/dev/null
  done
}

# The ingress network is the routing mesh for published ports; it needs IPVS, which this kernel
# lacks: each engine logs IPVS errors for its ingress sandbox, and a service publishing a port in
# ingress mode could never work. The cluster's services publish no ports through the swarm and
# use endpoint_mode dnsrr, so the ingress network is removed. (The CLI asks for confirmation.)
remove_ingress() {
  if dk 1 network inspect ingress >/dev/null 2>&1; then
    log "removing the swarm's ingress network (no IPVS on this kernel)"
    echo y | dk 1 network rm ingress >/dev/null
  fi
}

# "<id> <hostname> <status> <availability>" of each node in the manager's list
node_rows() { dk 1 node ls --format '{{.ID}} {{.Hostname}} {{.Status}} {{.Availability}}'; }

node_ready() {
  local want=$1
  node_rows 2>/dev/null | awk -v h="$want" '$2 == h && $3 == "Ready" && $4 == "Active" { ok = 1 } END { exit !ok }'
}

node_down() {
  node_rows 2>/dev/null | awk -v h="$1" '$2 == h && $3 == "Down" { ok = 1 } END { exit !ok }'
}

all_nodes_ready() {
  local n
  for n in "${NODES[@]}"; do node_ready "$(node_ns "$n")" || return 1; done
}

running_nodes_ready() {
  local n
  for n in "${NODES[@]}"; do
    engine_pid "$n" >/dev/null || continue
    node_ready "$(node_ns "$n")" || return 1
  done
}

# a node that rejoined (data lost) leaves its old entry Down: remove those, then label each node
# (hardened-fleet.node=<C>-N; a sandbox node also hardened-fleet.sandbox=gvisor, which the services
# of sandboxed plans are constrained to)
tidy_and_label_nodes() {
  local id host status _ n ns sandbox
  while read -r id host status _; do
    [ "$status" = Down ] || continue
    for n in "${NODES[@]}"; do
      if [ "$host" = "$(node_ns "$n")" ] && [ "$(node_rows | awk -v h="$host" '$2 == h' | wc -l)" -gt 1 ]; then
        log "removing the stale node entry $id ($host)"
        dk 1 node rm --force "$id" >/dev/null || true
      fi
    done
  done < <(node_rows)
  for n in "${NODES[@]}"; do
    ns=$(node_ns "$n")
    id=$(node_rows | awk -v h="$ns" '$2 == h && $3 == "Ready" { print $1; exit }')
    [ -n "$id" ] || die "node $ns is not in the swarm"
    if [ "$(dk 1 node inspect --format '{{index .Spec.Labels "hardened-fleet.node"}}' "$id")" != "$ns" ]; then
      dk 1 node update --label-add "hardened-fleet.node=$ns" "$id" >/dev/null
    fi
    sandbox=$(node_sandbox "$n")
    if [ "$sandbox" != none ] &&
      [ "$(dk 1 node inspect --format '{{index .Spec.Labels "hardened-fleet.sandbox"}}' "$id")" != "$sandbox" ]; then
      dk 1 node update --label-add "hardened-fleet.sandbox=$sandbox" "$id" >/dev/null
    fi
  done
}

# ---------------------------------------------------------------------------------------------
# cluster.json
# ---------------------------------------------------------------------------------------------

# Whether the kernel can do what an encrypted overlay (docker network create --opt encrypted) needs:
# the IPsec ESP state Docker programs between nodes, rfc4106(gcm(aes)) in transport mode. Tried in the
# LAN namespace (which the state vanishes with); the answer goes into cluster.json ("ipsec"), and the
# cluster's environment waives encrypted overlays (swarm.unencryptedOverlays) when it is no.
probe_ipsec() {
  local out
  if out=$(ip netns exec "$LAN_NS" ip xfrm state add src "$(node_ip 1)" dst "$(node_ip 2)" proto esp spi 0x4846 reqid 4846 \
      mode transport aead 'rfc4106(gcm(aes))' "0x$(printf '%040d' 0)" 64 2>&1); then
    ip netns exec "$LAN_NS" ip xfrm state flush
    IPSEC_OK=true IPSEC_DETAIL="ESP with rfc4106(gcm(aes)) works"
  else
    out=$(printf '%s' "$out" | tr -d '"\\' | tr '\n' ' ')
    IPSEC_OK=false IPSEC_DETAIL="ip xfrm state add ... proto esp ... aead 'rfc4106(gcm(aes))' ...: $out"
    log "no IPsec on this kernel ($out): overlays of the cluster's environments are unencrypted (swarm.unencryptedOverlays)"
  fi
}

write_cluster_json() {
  local n sep="" tmp name digest
  tmp=$(mktemp "$RUN/.cluster.json.XXXXXX")
  {
    printf '{\n  "name": "%s",\n  "manager": "%s",\n  "nodes": [\n' "$C" "$(node_host 1)"
    for n in "${NODES[@]}"; do
      printf '%s    {"name": "%s", "host": "%s", "address": "%s", "namespace": "%s"' \
        "$sep" "$(node_ns "$n")" "$(node_host "$n")" "$(node_ip "$n")" "$(node_ns "$n")"
      [ "$(node_sandbox "$n")" = none ] || printf ', "sandbox": "%s"' "$(node_sandbox "$n")"
      printf '}'
      sep=$',\n'
    done
    printf '\n  ],\n  "registry": "%s",\n  "bases": {\n' "$REGISTRY"
    sep=""
    for name in "${BASE_ORDER[@]}"; do
      digest=$(cut -d' ' -f2 "$RUN/bases/$name")
      printf '%s    "%s": "%s/hardened-fleet/%s@%s"' "$sep" "$name" "$REGISTRY" "$name" "$digest"
      sep=$',\n'
    done
    printf '\n  },\n  "ipsec": {"ok": %s, "detail": "%s"}\n}\n' "$IPSEC_OK" "$IPSEC_DETAIL"
  } >"$tmp"
  mv -f "$tmp" "$CLUSTER_JSON"
}

# ---------------------------------------------------------------------------------------------
# Subcommands
# ---------------------------------------------------------------------------------------------

PUSH_PID=""
up_failed() {
  local rc=$?
  [ "$rc" -eq 0 ] && return
  rm -f "$CLUSTER_JSON"
  [ -z "$PUSH_PID" ] || wait "$PUSH_PID" 2>/dev/null || true
  log "up failed (exit $rc); the logs are /var/log/hf-swarm-$C-*.log; run down to clean up"
}

cmd_up() {
  local started=$SECONDS n
  take_lock                   # first: two ups on a fresh machine would both run apt-get
  ensure_tools
  ensure_host_engine
  mkdir -p "$STATE" "$RUN"
  echo "$IDX" >"$RUN/subnet"
  # cluster.json stays while an up of a running cluster checks it; a failed up removes it (and
  # lets the image copies end, so that it leaves nothing running but the cluster itself)
  trap up_failed EXIT
  ensure_runsc                # before the engines: the sandbox nodes' daemon.json names it
  ensure_network
  for n in "${NODES[@]}"; do start_engine "$n"; done
  start_registry
  wait_registry
  # the copies take longest: they run while the engines start and the swarm forms
  push_bases & PUSH_PID=$!
  for n in "${NODES[@]}"; do wait_engine "$n"; done
  ensure_swarm
  wait_for 90 "all ${#NODES[@]} nodes Ready and Active" all_nodes_ready || { node_rows >&2 || true; return 1; }
  tidy_and_label_nodes
  wait "$PUSH_PID" || { PUSH_PID=""; die "pushing the base images failed"; }
  PUSH_PID=""
  pull_bases_on_nodes
  probe_ipsec
  write_cluster_json
  log "up in $((SECONDS - started))s: manager $(node_host 1), registry $REGISTRY"
  echo "$CLUSTER_JSON"
}

# kill what is left of the cluster's processes: anything in its network namespaces (containerd,
# shims, a registry) and anything in its cgroups (container processes, which have namespaces of
# their own). All of it was started by this script's engines.
kill_strays() {
  local pids=() socks=() ns n ctl f
  for ns in "$LAN_NS" "${NODES[@]/#/$C-}"; do
    ns_exists "$ns" || continue
    mapfile -t -O "${#pids[@]}" pids < <(ip netns pids "$ns" 2>/dev/null)
    # a containerd shim listens on /run/containerd/s/<hash> (a path shared by all containerds),
    # which is left behind when the shim is killed: note the sockets of this namespace's shims
    mapfile -t -O "${#socks[@]}" socks < <(in_ns "$ns" ss -xlpn 2>/dev/null |
      awk '$5 ~ "^/run/containerd/s/" && /containerd-shim/ { print $5 }')
  done
  for n in "${NODES[@]}"; do
    for ctl in /sys/fs/cgroup/*/; do
      [ -d "$ctl$(node_cgroup "$n")" ] || continue
      while IFS= read -r f; do
        mapfile -t -O "${#pids[@]}" pids <"$f"
      done < <(find "$ctl$(node_cgroup "$n")" -name cgroup.procs 2>/dev/null)
    done
  done
  [ ${#pids[@]} -gt 0 ] || return 0
  mapfile -t pids < <(printf '%s\n' "${pids[@]}" | sort -un)
  log "killing ${#pids[@]} leftover process(es): ${pids[*]}"
  kill -KILL "${pids[@]}" 2>/dev/null || true
  sleep 1
  [ ${#socks[@]} -eq 0 ] || rm -f "${socks[@]}"
}

other_clusters_exist() {
  local d
  for d in /run/hf-swarm/*/; do
    [ -d "$d" ] && [ "$(basename "$d")" != "$C" ] && return 0
  done
  return 1
}

# remove the cgroup directories the engines made (empty once their processes are gone)
remove_cgroups() {
  local ctl
  for ctl in /sys/fs/cgroup/*/; do
    [ -d "${ctl}hf-swarm/$C" ] || continue
    find "${ctl}hf-swarm/$C" -depth -type d -exec rmdir {} + 2>/dev/null || true
    # the shared parent only when no other cluster runs (its engines may be making cgroups in it)
    other_clusters_exist || rmdir "${ctl}hf-swarm" 2>/dev/null || true
  done
}

# mounts under the cluster's directories in the host's mount namespace (normally none: the engines
# mount inside their own mount namespaces), deepest first
unmount_under() {
  local dir mp
  for dir in "$STATE" "$RUN"; do
    while read -r mp; do
      log "unmounting $mp"
      umount -l "$mp" 2>/dev/null || true
    done < <(awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r)
  done
}

remove_containers() {
  local n=$1 ctrs=()
  engine_answers "$n" || return 0
  mapfile -t ctrs < <(dk "$n" ps -q 2>/dev/null || true)
  [ ${#ctrs[@]} -eq 0 ] || dk "$n" kill "${ctrs[@]}" >/dev/null 2>&1 || true
  mapfile -t ctrs < <(dk "$n" ps -aq 2>/dev/null || true)
  [ ${#ctrs[@]} -eq 0 ] || dk "$n" rm -f "${ctrs[@]}" >/dev/null 2>&1 || true
}

cmd_down() {
  local started=$SECONDS n ns
  take_lock
  rm -f "$CLUSTER_JSON"
  # services first, so that the swarm does not start tasks again while engines stop
  if engine_pid 1 >/dev/null && engine_answers 1; then
    local svcs=()
    mapfile -t svcs < <(dk 1 service ls -q 2>/dev/null || true)
    if [ ${#svcs[@]} -gt 0 ]; then
      log "removing ${#svcs[@]} swarm service(s)"
      dk 1 service rm "${svcs[@]}" >/dev/null 2>&1 || true
    fi
  fi
  # then every container, killed at once: the swarm agents are stopping the tasks of removed
  # services gracefully (SIGTERM, 10s), and an engine stop would wait for that; nothing is kept
  for n in "${NODES[@]}"; do
    engine_pid "$n" >/dev/null && remove_containers "$n" &
  done
  wait
  # the engines stop in parallel (each waits for its own process)
  local pids=()
  for n in "${NODES[@]}"; do stop_engine "$n" & pids+=($!); done
  wait "${pids[@]}" 2>/dev/null || true
  stop_registry
  kill_strays
  unmount_under
  ip link del "$HOST_VETH" 2>/dev/null || true
  for ns in "${NODES[@]/#/$C-}" "$LAN_NS"; do
    if [ -e "/run/netns/$ns" ]; then
      ip netns del "$ns" 2>/dev/null || { umount -l "/run/netns/$ns" 2>/dev/null; rm -f "/run/netns/$ns"; }
    fi
  done
  remove_cgroups
  # data-roots hold tens of thousands of files: remove them side by side
  local d
  for d in "$STATE"/* "$RUN"; do
    [ -e "$d" ] && rm -rf --one-file-system "$d" &
  done
  wait
  rm -rf --one-file-system "$STATE"
  rmdir /var/lib/hf-swarm /run/hf-swarm 2>/dev/null || true
  if [ "${HF_SWARM_KEEP_LOGS:-0}" != 1 ]; then
    rm -f "$REGISTRY_LOG"
    for n in "${NODES[@]}"; do rm -f "$(node_log "$n")"; done
  fi
  log "down in $((SECONDS - started))s"
}

node_arg() {
  local n
  for n in "${NODES[@]}"; do [ "${1:-}" = "$n" ] && { echo "$1"; return; }; done
  die "give a node number: ${NODES[*]}"
}

cmd_stop_node() {
  local n; n=$(node_arg "${1:-}")
  take_lock
  stop_engine "$n"
  # the manager notices a stopped worker only when its heartbeats are missed (about 10s): wait for
  # that, so that what follows sees the swarm's view of a down node
  if [ "$n" != 1 ] && engine_answers 1; then
    wait_for 60 "the manager to see $(node_ns "$n") Down" node_down "$(node_ns "$n")" || true
    log "the manager lists $(node_ns "$n") as $(node_rows | awk -v h="$(node_ns "$n")" '$2 == h { print $3 }' | head -1)"
  fi
}

cmd_start_node() {
  local n; n=$(node_arg "${1:-}")
  take_lock
  ns_exists "$(node_ns "$n")" || die "the cluster is not up (no namespace $(node_ns "$n")); run up"
  start_engine "$n"
  wait_engine "$n"
  # the engine's own swarm agent first (it is "pending" until it has reached the manager), then the
  # manager's view: right after a stop the manager may still list the node Ready from before
  wait_for 90 "the swarm agent of $(node_ns "$n")" swarm_active "$n" || return 1
  # (after the manager's restart every node reconnects: wait for all whose engine runs)
  wait_for 90 "$(node_ns "$n") Ready in the swarm" running_nodes_ready || { node_rows >&2 || true; return 1; }
  log "$(node_ns "$n") is Ready"
}

cluster_is_up() { [ -f "$CLUSTER_JSON" ] && engine_answers 1; }

cmd_status() {
  cluster_is_up || { log "not up"; return 1; }
  dk 1 node ls
  echo "$CLUSTER_JSON"
}

cmd_env() {
  cluster_is_up || { log "not up"; return 1; }
  echo "$CLUSTER_JSON"
}

usage() {
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[ "$(id -u)" = 0 ] || die "run as root (namespaces, engines)"
case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  stop-node) cmd_stop_node "${2:-}" ;;
  start-node) cmd_start_node "${2:-}" ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) usage ;;
esac
