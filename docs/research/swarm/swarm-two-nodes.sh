#!/bin/bash
# Two-node Docker Swarm on one machine: two extra dockerd, each in its own
# network namespace, joined by a veth pair 10.77.0.1/24 <-> 10.77.0.2/24.
# Tested on Debian 12, docker.io 20.10.24+dfsg1, containerd 1.6.20, cgroup v1.
# Needs root. Does not touch the main engine except `docker save` of one image.
#
#   /tmp/swarm-two-nodes.sh            # set up (runs teardown first if leftovers)
#   export D1="docker -H unix:///tmp/sw/n1/docker.sock" D2="docker -H unix:///tmp/sw/n2/docker.sock"
#   /tmp/swarm-teardown.sh             # remove everything
#
# Knobs (env): SW_BASE SW_IMAGE MAIN_SOCK SW_HEARTBEAT SW_IPTABLES SW_ADDR_POOL
#   /tmp/swarm-two-nodes.sh restart-node 2   # restart node 2's dockerd (after swarm-kill-node.sh)
set -euo pipefail
SW_BASE=${SW_BASE:-/tmp/sw}                 # keep short: unix socket paths < 108 chars
SW_IMAGE=${SW_IMAGE:-mlmarket/base:bookworm} # copied from the main engine
MAIN_SOCK=${MAIN_SOCK:-/var/run/docker.sock}
SW_HEARTBEAT=${SW_HEARTBEAT:-5s}            # swarm dispatcher heartbeat (docker default 5s)
SW_IPTABLES=${SW_IPTABLES:-false}           # iptables inside the node netns; not needed for internal overlays
SW_ADDR_POOL=${SW_ADDR_POOL:-10.200.0.0/16} # overlay subnets; keep away from the 10.77.0.0/24 underlay
CG=/sys/fs/cgroup
log() { echo "[setup $(date +%T.%3N)] $*"; }
t0=$(date +%s.%N)
el() { printf '%.2fs' "$(echo "$(date +%s.%N) - $t0" | bc)"; }

# --- functions: start one dockerd / wait for it ----------------------------
start_node() { # $1 = node number
  local n=$1 d=$SW_BASE/n$1
  mkdir -p "$d"
  echo '{}' > "$d/daemon.json"   # do not pick up /etc/docker/daemon.json
  # Daemon cgroup (pids + freezer hierarchies) so dockerd, its containerd and
  # all shims can be found/killed/frozen later (see swarm-kill-node.sh).
  for h in pids freezer; do mkdir -p "$CG/$h/swd-n$n"; done
  # nsenter --net ONLY (not `ip netns exec`: that makes a new mount ns and
  # remounts /sys, so /sys/fs/cgroup disappears and dockerd dies with
  # "Devices cgroup isn't mounted"). unshare --uts gives each node its own
  # hostname, so `docker node ls` shows sw-n1 / sw-n2 instead of twice "vm".
  nsenter --net=/run/netns/sw-n$n unshare --uts sh -c "
    echo \$\$ > $CG/pids/swd-n$n/cgroup.procs
    echo \$\$ > $CG/freezer/swd-n$n/cgroup.procs
    hostname sw-n$n
    exec setsid dockerd \
      --config-file $d/daemon.json \
      --data-root $d/data \
      --exec-root $d/exec \
      --pidfile $d/docker.pid \
      -H unix://$d/docker.sock \
      --bridge=none \
      --iptables=$SW_IPTABLES \
      --ip-forward=$SW_IPTABLES \
      --cgroup-parent=/sw-n$n" >> "$d/dockerd.log" 2>&1 < /dev/null &
}
wait_node() { # $1 = node number
  for i in $(seq 1 150); do
    docker -H unix://$SW_BASE/n$1/docker.sock version >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  log "dockerd n$1 did not come up, see $SW_BASE/n$1/dockerd.log"; exit 1
}

# `swarm-two-nodes.sh restart-node N`: start node N's dockerd again (after
# swarm-kill-node.sh); it rejoins the swarm by itself (state is in its data-root).
if [ "${1:-}" = restart-node ]; then
  # works after a hard kill too: the stale mounts/netns files are reused or
  # cleaned by dockerd on start (measured: API up 0.9s, node Ready ~1s).
  start_node "$2"; wait_node "$2"; log "n$2 dockerd answers ($(el))"; exit 0
fi

# --- 0. leftovers from an earlier run? --------------------------------------
if ip netns list | grep -qE '^sw-n[12]\b' || [ -e "$SW_BASE" ]; then
  log "leftovers found, running teardown first"
  SW_BASE=$SW_BASE /tmp/swarm-teardown.sh
fi

# --- 1. network namespaces + veth ------------------------------------------
ip netns add sw-n1
ip netns add sw-n2
ip link add sw-v1 netns sw-n1 type veth peer name sw-v2 netns sw-n2
ip -n sw-n1 addr add 10.77.0.1/24 dev sw-v1
ip -n sw-n2 addr add 10.77.0.2/24 dev sw-v2
for n in 1 2; do
  ip -n sw-n$n link set lo up
  ip -n sw-n$n link set sw-v$n up
done
log "netns + veth up ($(el))"

# --- 2. two dockerd ---------------------------------------------------------
start_node 1
start_node 2
wait_node 1
wait_node 2
D1="docker -H unix://$SW_BASE/n1/docker.sock"
D2="docker -H unix://$SW_BASE/n2/docker.sock"
log "both dockerd answer ($(el))"

# --- 3. swarm ---------------------------------------------------------------
$D1 swarm init --advertise-addr 10.77.0.1 --listen-addr 10.77.0.1:2377 \
  --dispatcher-heartbeat "$SW_HEARTBEAT" \
  --default-addr-pool "$SW_ADDR_POOL" --default-addr-pool-mask-length 24 >/dev/null
TOKEN=$($D1 swarm join-token -q worker)
$D2 swarm join --token "$TOKEN" --advertise-addr 10.77.0.2 --listen-addr 10.77.0.2:2377 10.77.0.1:2377 >/dev/null
for i in $(seq 1 100); do
  [ "$($D1 node ls --format '{{.Status}}' | grep -c Ready)" = 2 ] && break
  [ $i = 100 ] && { log "node 2 not Ready"; $D1 node ls; exit 1; }
  sleep 0.2
done
log "swarm up, 2 nodes Ready ($(el))"

# --- 4. image from the main engine (no registry) ---------------------------
if [ ! -f "$SW_BASE/image.tar" ]; then
  docker -H unix://$MAIN_SOCK save "$SW_IMAGE" -o "$SW_BASE/image.tar"
fi
$D1 load -q -i "$SW_BASE/image.tar" >/dev/null & l1=$!
$D2 load -q -i "$SW_BASE/image.tar" >/dev/null & l2=$!
wait $l1 $l2   # NOT a bare `wait`: that would also wait for the two dockerd
IMAGE_ID=$($D1 image inspect -f '{{.Id}}' "$SW_IMAGE")
[ "$($D2 image inspect -f '{{.Id}}' "$SW_IMAGE")" = "$IMAGE_ID" ]
echo "$IMAGE_ID" > "$SW_BASE/image.id"
log "image $SW_IMAGE ($IMAGE_ID) on both nodes ($(el))"

$D1 node ls
cat <<EOF
export D1="$D1"
export D2="$D2"
export SW_IMAGE_ID=$IMAGE_ID   # use the ID in 'service create' to skip any pull attempt
EOF
