#!/bin/bash
# Tear down the two-node test swarm made by /tmp/swarm-two-nodes.sh.
# Safe to run any number of times, also after a half-failed setup or a
# "hard-killed" node. Touches only: $SW_BASE, netns sw-n1/sw-n2, cgroups
# sw-n1/sw-n2 (containers) and swd-n1/swd-n2 (daemons), and containerd shim
# sockets in /run/containerd/s that belong to our two containerds.
# Never touches the main engine at /var/run/docker.sock.
set -u
SW_BASE=${SW_BASE:-/tmp/sw}
NODES=${NODES:-"1 2"}
CG=/sys/fs/cgroup
log() { echo "[teardown $(date +%T)] $*"; }

# 1. Graceful part: leave swarm and stop dockerd (SIGTERM) if it still answers.
#    Not required for correctness (step 2 kills everything), it only makes the
#    daemons unmount their own stuff. Bounded by timeouts. SW_FAST=1 skips it
#    (teardown then takes ~1 s instead of ~10 s).
[ "${SW_FAST:-0}" = 1 ] || for n in $NODES; do
  sock=$SW_BASE/n$n/docker.sock
  if [ -S "$sock" ] && timeout 5 docker -H unix://$sock version >/dev/null 2>&1; then
    timeout 20 docker -H unix://$sock swarm leave --force >/dev/null 2>&1 && log "n$n left swarm"
  fi
  pidf=$SW_BASE/n$n/docker.pid
  if [ -f "$pidf" ]; then
    p=$(cat "$pidf")
    # only signal it if it really is our dockerd
    if [ -n "$p" ] && tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null | grep -q -- "--exec-root $SW_BASE/n$n/exec"; then
      kill -TERM "$p" 2>/dev/null
      for i in $(seq 1 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.25; done
      kill -0 "$p" 2>/dev/null && { log "n$n dockerd $p still alive after 15s, SIGKILL"; kill -KILL "$p"; }
    fi
  fi
done

# 2. Hard part: kill every process left in our cgroups (daemon cgroup swd-nN
#    holds dockerd + its containerd + shims; sw-nN/<id> holds the containers).
kill_cgroup_tree() { # $1 = cgroup path relative to a hierarchy
  local h f p round
  for round in 1 2 3 4 5 6 7 8 9 10; do
    local left=0
    for h in pids freezer memory cpu; do
      [ -d "$CG/$h/$1" ] || continue
      while read -r f; do
        while read -r p; do
          [ -n "$p" ] || continue
          kill -KILL "$p" 2>/dev/null && left=1
        done < "$f"
      done < <(find "$CG/$h/$1" -name cgroup.procs 2>/dev/null)
    done
    [ $left = 0 ] && return 0
    sleep 0.3
  done
}
for n in $NODES; do
  kill_cgroup_tree "swd-n$n"
  kill_cgroup_tree "sw-n$n"
done
# belt and braces: a shim or containerd that escaped the cgroup (should not happen)
for p in $(pgrep -f -- "$SW_BASE/n[0-9]+/exec" 2>/dev/null); do
  log "stray process $p: $(tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null | cut -c1-120)"; kill -KILL "$p" 2>/dev/null
done
sleep 0.3

# 3. Stale shim sockets in the global /run/containerd/s (name = sha256 of
#    "<containerd address>/moby/<container id>"): remove only ours.
for n in $NODES; do
  [ -d "$SW_BASE/n$n/data/containers" ] || continue
  for id in $(ls "$SW_BASE/n$n/data/containers"); do
    h=$(printf '%s' "$SW_BASE/n$n/exec/containerd/containerd.sock/moby/$id" | sha256sum | cut -c1-64)
    [ -e /run/containerd/s/$h ] && rm -f /run/containerd/s/$h && log "removed stale shim socket $h"
  done
done

# 4. Unmount everything under SW_BASE (overlay merged dirs, nsfs netns files,
#    the data-root self bind mount), deepest first; lazy as last resort.
for try in 1 2 3; do
  mnts=$(awk -v b="$SW_BASE/" 'index($5,b)==1 || $5==substr(b,1,length(b)-1) {print $5}' /proc/self/mountinfo | sort -r)
  [ -z "$mnts" ] && break
  for m in $mnts; do umount "$m" 2>/dev/null || { [ $try = 3 ] && umount -l "$m" 2>/dev/null; }; done
done

# 5. cgroups we created (rmdir deepest first, every v1 hierarchy + v2 if any)
for n in $NODES; do
  for d in "$CG"/*/sw-n$n "$CG"/*/swd-n$n "$CG"/sw-n$n "$CG"/swd-n$n; do
    [ -d "$d" ] || continue
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
done

# 6. network namespaces (deleting the netns also deletes the veth pair)
for n in $NODES; do ip netns del sw-n$n 2>/dev/null && log "netns sw-n$n deleted"; done

# 7. files
rm -rf "$SW_BASE"

# 8. verification
bad=0
awk -v b="$SW_BASE" 'index($5,b)==1' /proc/self/mountinfo | grep -q . && { log "LEFT: mounts under $SW_BASE"; bad=1; }
pgrep -f -- "$SW_BASE/" >/dev/null && { log "LEFT: processes: $(pgrep -af -- "$SW_BASE/")"; bad=1; }
ip netns list | grep -qE '^sw-n[0-9]' && { log "LEFT: netns"; bad=1; }
ls -d "$CG"/*/sw-n* "$CG"/*/swd-n* 2>/dev/null | grep -q . && { log "LEFT: cgroups"; bad=1; }
ip -o link | grep -qE 'sw-v[0-9]' && { log "LEFT: veth in root netns"; bad=1; }
[ -e "$SW_BASE" ] && { log "LEFT: $SW_BASE"; bad=1; }
if [ $bad = 0 ]; then log "clean"; else log "NOT clean"; fi
exit $bad
