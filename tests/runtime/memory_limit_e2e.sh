#!/bin/sh
# `ringscan info` run inside a cgroup made by hand with a 2 GiB memory limit must
# report "memory: 2.00 GiB (cgroup v1|v2 ...)". Making a cgroup needs root and a
# writable memory controller (cgroup v1, or v2 with memory delegated to our cgroup's
# children); systemd-run -p MemoryMax=2G needs a running systemd, which containers
# and CI runners often lack. Where no cgroup can be made, the cgroup parsing is covered
# by test_memory_limit (a fake /proc and /sys tree) and this script checks the rest of
# the path end to end through Slurm's variable instead (SLURM_MEM_PER_NODE=1: 1 MiB,
# below any real limit), saying so in its output.
# usage: memory_limit_e2e.sh <ringscan binary>
set -eu
rs=$1
tmp=$(mktemp -d)
cg=""
cleanup() { [ -n "$cg" ] && rmdir "$cg" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
"$rs" make-model --preset tiny --out "$tmp/model" >/dev/null

limit=2147483648
make_cgroup() {  # sets cg to a new cgroup with the 2 GiB limit, or returns 1
  [ "$(id -u)" = 0 ] || return 1
  v1=$(sed -n 's/^[0-9]*:\([^:]*,\)\{0,1\}memory\(,[^:]*\)\{0,1\}:\(.*\)$/\3/p' /proc/self/cgroup)
  if [ -n "$v1" ] && [ -d "/sys/fs/cgroup/memory$v1" ]; then
    cg="/sys/fs/cgroup/memory${v1%/}/ringscan_e2e_$$"
    mkdir "$cg" 2>/dev/null && echo $limit > "$cg/memory.limit_in_bytes" 2>/dev/null && return 0
  fi
  v2=$(sed -n 's/^0::\(.*\)$/\1/p' /proc/self/cgroup)
  if [ -n "$v2" ] && grep -qw memory "/sys/fs/cgroup${v2%/}/cgroup.subtree_control" 2>/dev/null; then
    cg="/sys/fs/cgroup${v2%/}/ringscan_e2e_$$"
    mkdir "$cg" 2>/dev/null && echo $limit > "$cg/memory.max" 2>/dev/null && return 0
  fi
  [ -n "$cg" ] && rmdir "$cg" 2>/dev/null
  cg=""
  return 1
}

if make_cgroup; then
  echo "running ringscan info in $cg (memory limit 2 GiB)"
  out=$(sh -c 'echo $$ > "$1/cgroup.procs" && exec "$2" info --model "$3"' sh "$cg" "$rs" "$tmp/model")
  echo "$out" | grep '^memory:'
  echo "$out" | grep -Eq '^memory: 2\.00 GiB \(cgroup v[12] memory\.(max|limit_in_bytes)\)$' ||
    { echo "FAIL: info did not report the cgroup's 2 GiB limit"; exit 1; }
else
  echo "cannot make a cgroup here (not root, or no writable memory controller):" \
       "the cgroup lookup is tested by test_memory_limit on a fake tree; checking info with SLURM_MEM_PER_NODE=1"
  out=$(SLURM_MEM_PER_NODE=1 "$rs" info --model "$tmp/model")
  echo "$out" | grep '^memory:'
  echo "$out" | grep -q '^memory: 1\.00 MiB (SLURM_MEM_PER_NODE)$' ||
    { echo "FAIL: info did not report SLURM_MEM_PER_NODE"; exit 1; }
fi
echo PASS
