#!/usr/bin/env bash
# A throw-away Slurm cluster on this one machine (munged, slurmctld, one slurmd per
# simulated node) living entirely in one folder: its own munge key and socket,
# slurm.conf, state, spool, temp dirs, logs and free TCP ports, so it touches nothing
# in /etc and several can run side by side. It exists to test slurm/*.sbatch
# (tests/slurm/) and to try them without a real cluster.
#
#   slurm/local-cluster.sh start DIR [--nodes N] [--cpus C] [--gpus G] [--watch PID]
#       DIR must be new or empty. Then `source DIR/env.sh` points sbatch, squeue,
#       scontrol ... at this cluster (SLURM_CONF) and sets what Open MPI needs here.
#       --nodes N: simulated nodes node1..nodeN (default 1), all on this machine.
#       --cpus C: task slots per node (default 8; more than the cores is fine).
#       --gpus G: fake GPUs per node (at most 4), so that GPU requests (--gpus-per-node,
#       --gpus-per-task) are scheduled and bound (CUDA_VISIBLE_DEVICES) as on a GPU
#       cluster; the "devices" are /dev/null-like files, so programs see no GPU.
#       --watch PID: stop the cluster by itself when process PID ends (even if PID is
#       killed with SIGKILL and cannot clean up).
#   slurm/local-cluster.sh stop DIR
#       Cancels its jobs and ends its daemons, job steps and job processes (found by
#       SLURM_CONF=DIR/slurm.conf in their environment). Safe to repeat; DIR is kept.
#
# Needs root (slurmd runs jobs as their user) and Debian's slurmctld, slurmd,
# slurm-client, munge (scripts/setup.sh). Config choices for a container / VM without
# systemd or cgroup delegation: proctrack/linuxproc, task/none, and
# SlurmdParameters=config_overrides so a node may claim more CPUs than it has.
set -euo pipefail

die() { echo "local-cluster: $*" >&2; exit 1; }

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Processes of this cluster: the daemons from their pid files, and every process whose
# environment names this cluster's slurm.conf (slurmstepd, the job scripts, srun, ranks),
# except this script and its callers (a shell that exported SLURM_CONF, the watcher).
cluster_pids() {
  local dir="$1" f pid p
  local -A mine=()
  p=$BASHPID
  while [[ -n "$p" && "$p" != 0 ]]; do
    mine[$p]=1
    p=$(awk '/^PPid:/ {print $2}' "/proc/$p/status" 2>/dev/null) || break
  done
  for f in "$dir"/run/*.pid; do
    [[ -f "$f" ]] && pid=$(<"$f") && [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
  done
  local needle="SLURM_CONF=$dir/slurm.conf"
  for f in /proc/[0-9]*/environ; do
    pid=${f#/proc/}; pid=${pid%/environ}
    [[ -n "${mine[$pid]:-}" ]] && continue
    if { tr '\0' '\n' <"$f"; } 2>/dev/null | grep -qxF "$needle"; then echo "$pid"; fi
  done
  return 0
}

stop_cluster() {
  local dir
  dir="$(cd "$1" 2>/dev/null && pwd)" || return 0
  [[ -f "$dir/slurm.conf" ]] || return 0
  unset SLURM_CONF  # our own helpers must not look like the cluster's processes
  if [[ -f "$dir/run/slurmctld.pid" ]] && kill -0 "$(<"$dir/run/slurmctld.pid")" 2>/dev/null; then
    SLURM_CONF="$dir/slurm.conf" timeout 10 scancel --quiet --full --user=root 2>/dev/null || true
  fi
  local pids sig
  for sig in TERM TERM TERM KILL; do
    pids=$(cluster_pids "$dir" | sort -u)
    [[ -z "$pids" ]] && break
    # shellcheck disable=SC2086
    kill -s "$sig" $pids 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      sleep 0.3
      pids=$(cluster_pids "$dir" | sort -u)
      [[ -z "$pids" ]] && break
    done
  done
  pids=$(cluster_pids "$dir" | sort -u)
  [[ -z "$pids" ]] || die "could not end processes of the cluster in $dir: $pids"
  rm -f "$dir"/run/*.pid
  # The watcher is not needed once the cluster is stopped (unless it is what runs us).
  if [[ -f "$dir/run/watcher.pid.keep" ]]; then
    local w
    w=$(<"$dir/run/watcher.pid.keep")
    [[ "$w" == "$$" || "$w" == "$PPID" ]] || kill "$w" 2>/dev/null || true
    rm -f "$dir/run/watcher.pid.keep"
  fi
}

# Waits until `cmd` succeeds, or fails naming what did not start and showing its log.
wait_for() {
  local what="$1" log="$2" secs="$3"; shift 3
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= end)); then
      echo "local-cluster: $what did not come up within ${secs}s; last lines of $log:" >&2
      tail -n 25 "$log" >&2 2>/dev/null || echo "(no log written)" >&2
      return 1
    fi
    sleep 0.5
  done
}

nodes_idle() { [[ "$(sinfo -h -N -o %T 2>/dev/null | sort -u)" == idle ]]; }

start_cluster() {
  local dir="$1" nodes="$2" cpus="$3" gpus="$4" watch="$5"
  [[ $(id -u) -eq 0 ]] || die "needs root (slurmd must run jobs as their users)"
  local tool
  for tool in munged mungekey munge unmunge slurmctld slurmd sbatch scontrol sinfo python3; do
    command -v "$tool" >/dev/null || die "$tool not found; run scripts/setup.sh (Debian packages slurmctld slurmd slurm-client munge)"
  done
  [[ "$nodes" =~ ^[1-9][0-9]*$ ]] || die "--nodes $nodes: expected a positive number"
  [[ "$cpus" =~ ^[1-9][0-9]*$ ]] || die "--cpus $cpus: expected a positive number"
  [[ "$gpus" =~ ^[0-4]$ ]] || die "--gpus $gpus: expected 0 to 4 fake GPUs per node"
  if [[ -e "$dir" ]] && [[ -n "$(ls -A "$dir")" ]]; then die "$dir is not empty; expected a new folder"; fi
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  # munged insists that the folders of its socket are searchable by all, and its key private.
  chmod 755 "$dir"
  mkdir -p "$dir/munge" "$dir/run" "$dir/log" "$dir/state"
  mkdir -m 700 "$dir/munge-key"
  chmod 755 "$dir/munge"
  mungekey --create --keyfile="$dir/munge-key/munge.key" --bits=1024
  munged --socket="$dir/munge/munge.sock" --key-file="$dir/munge-key/munge.key" \
    --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed" \
    || die "munged did not start; see $dir/log/munged.log"
  wait_for munged "$dir/log/munged.log" 15 bash -c "munge -n -S '$dir/munge/munge.sock' | unmunge -S '$dir/munge/munge.sock'"

  local host ctld_port i
  host=$(hostname -s)
  ctld_port=$(free_port)
  local node_lines="" gres_lines="AutoDetect=off" names=""
  # Fake GPU "devices": Slurm wants character devices; these are harmless ones.
  local fake=(/dev/null /dev/zero /dev/full /dev/urandom)
  for ((i = 1; i <= nodes; i++)); do
    local port
    port=$(free_port)
    while [[ "$port" == "$ctld_port" || " $node_lines " == *"Port=$port "* ]]; do port=$(free_port); done
    mkdir -p "$dir/spool/node$i" "$dir/tmp/node$i"
    node_lines+="NodeName=node$i NodeHostname=$host NodeAddr=127.0.0.1 Port=$port CPUs=$cpus RealMemory=1000"
    if ((gpus > 0)); then
      node_lines+=" Gres=gpu:$gpus"
      mkdir -p "$dir/gpus/node$i"
      local g files=()
      for ((g = 0; g < gpus; g++)); do
        ln -s "${fake[$g]}" "$dir/gpus/node$i/gpu$g"
        files+=("$dir/gpus/node$i/gpu$g")
      done
      gres_lines+=$'\n'"NodeName=node$i Name=gpu File=$(IFS=,; echo "${files[*]}")"
    fi
    node_lines+=" State=UNKNOWN"$'\n'
    names+="${names:+,}node$i"
  done
  cat >"$dir/slurm.conf" <<EOF
# Written by slurm/local-cluster.sh: a cluster of $nodes simulated node(s) on $host, in $dir.
ClusterName=ringscan-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: a requeued job may start again this many seconds after it was stopped
# (Slurm waits for the old credential to expire; its default is 120 s).
AuthInfo=socket=$dir/munge/munge.sock,cred_expire=10
StateSaveLocation=$dir/state
# Job ids differ between clusters: Open MPI names its per-job shared-memory and session
# files after the PMIx namespace (from the job id), so two clusters on this machine
# (or a file left by a killed run) must not meet the same ids.
FirstJobId=$(( (RANDOM % 30000 + 1) * 1000 ))
# Per node (%n), since the simulated nodes share this machine: spool (holds the PMIx
# server's socket), TmpFS (PMIx's per-step client folder), pid and log files.
SlurmdSpoolDir=$dir/spool/%n
TmpFS=$dir/tmp/%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd-%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmdParameters=config_overrides
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
SchedulerType=sched/backfill
# Schedule every few seconds (defaults: 60 s / 30 s), so a requeued job starts soon
# after its BeginTime.
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=3600
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
$( ((gpus > 0)) && echo "GresTypes=gpu")
${node_lines}PartitionName=local Nodes=$names Default=YES MaxTime=INFINITE State=UP
EOF
  ((gpus > 0)) && echo "$gres_lines" >"$dir/gres.conf"
  {
    echo "# source this file to use the cluster in $dir"
    echo "export SLURM_CONF=$dir/slurm.conf"
    if ((nodes > 1)); then
      echo "# The simulated nodes share one host name, so Open MPI's shared-memory transport"
      echo "# (segment files named by host) would mix up ranks of different nodes: use TCP"
      echo "# over loopback between all ranks instead."
      echo "export OMPI_MCA_btl=self,tcp OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo"
    fi
  } >"$dir/env.sh"

  if [[ -n "$watch" ]]; then
    # Detached from our session so a kill of the caller's process group does not end it.
    setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 2; done; exec "$2" stop "$3"' watcher \
      "$watch" "$(cd "$(dirname "$0")" && pwd)/$(basename "$0")" "$dir" \
      </dev/null >>"$dir/log/watcher.log" 2>&1 &
    echo $! >"$dir/run/watcher.pid.keep"
  fi
  export SLURM_CONF="$dir/slurm.conf"
  # -c: a clean start, no state from an earlier cluster in this folder.
  slurmctld -c -f "$dir/slurm.conf" || die "slurmctld did not start; see $dir/log/slurmctld.log"
  wait_for slurmctld "$dir/log/slurmctld.log" 30 scontrol ping
  for ((i = 1; i <= nodes; i++)); do
    slurmd -f "$dir/slurm.conf" -N "node$i" || die "slurmd of node$i did not start; see $dir/log/slurmd-node$i.log"
  done
  if ! wait_for "slurmd (every node idle)" "$dir/log/slurmd-node1.log" 60 nodes_idle; then
    sinfo -N -o '%N %T %E' >&2 || true
    exit 1
  fi
}

cmd="${1:-}"
[[ -n "$cmd" && -n "${2:-}" ]] || usage
dir="$2"
shift 2
nodes=1 cpus=8 gpus=0 watch=""
while (($#)); do
  [[ $# -ge 2 ]] || usage
  case "$1" in
    --nodes) nodes="$2" ;;
    --cpus) cpus="$2" ;;
    --gpus) gpus="$2" ;;
    --watch) watch="$2" ;;
    *) usage ;;
  esac
  shift 2
done
case "$cmd" in
  start)
    # Whatever fails while starting, nothing of the half-started cluster stays running.
    cleanup_on_failure() { local rc=$?; if ((rc)); then stop_cluster "$dir" || true; fi; exit "$rc"; }
    trap cleanup_on_failure EXIT
    start_cluster "$dir" "$nodes" "$cpus" "$gpus" "$watch"
    ;;
  stop) stop_cluster "$dir" ;;
  *) usage ;;
esac
