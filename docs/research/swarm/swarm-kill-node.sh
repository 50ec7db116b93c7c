#!/bin/bash
# Simulate a hard crash of one node made by /tmp/swarm-two-nodes.sh:
# SIGKILL its dockerd, its containerd, all its shims and all its containers.
#   /tmp/swarm-kill-node.sh 2            # crash node 2 (everything dies)
#   /tmp/swarm-kill-node.sh 2 daemon     # kill only dockerd (containers keep running as orphans!)
#   /tmp/swarm-kill-node.sh 2 partition  # veth down: node alive but unreachable (undo: ip -n sw-n2 link set sw-v2 up)
set -u
SW_BASE=${SW_BASE:-/tmp/sw}; n=$1; mode=${2:-all}; CG=/sys/fs/cgroup
case $mode in
  daemon) kill -KILL "$(cat $SW_BASE/n$n/docker.pid)" ;;
  partition) ip -n sw-n$n link set sw-v$n down ;;
  all)
    # freeze first so nothing can restart/fork while we kill, then kill, then thaw
    echo FROZEN > $CG/freezer/swd-n$n/freezer.state
    for f in $(find $CG/freezer/sw-n$n -name freezer.state 2>/dev/null); do echo FROZEN > $f; done
    for i in 1 2 3 4 5; do
      pids=$(cat $CG/pids/swd-n$n/cgroup.procs $(find $CG/pids/sw-n$n -name cgroup.procs 2>/dev/null) 2>/dev/null)
      [ -z "$pids" ] && break
      kill -KILL $pids 2>/dev/null
      echo THAWED > $CG/freezer/swd-n$n/freezer.state
      for f in $(find $CG/freezer/sw-n$n -name freezer.state 2>/dev/null); do echo THAWED > $f; done
      sleep 0.2
    done ;;
esac
