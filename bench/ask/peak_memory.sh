#!/usr/bin/env bash
# Peak memory of one process, split into private (anonymous) and file-backed pages:
#   bench/ask/peak_memory.sh build/ringscan ask --state S --questions Q --out A.h5 ...
# runs the command (one process: no mpirun), samples /proc/PID/status every 50 ms, and
# prints the largest RssAnon and RssFile seen and the kernel's VmHWM (peak RSS, both kinds)
# at the end. What a memory-mapped state shard moves: from RssAnon to RssFile.
set -uo pipefail
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
log=$(mktemp)
"$@" >/dev/null 2>"$log" &
pid=$!
anon=0 file=0 hwm=0
field() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$pid/status" 2>/dev/null; }
while kill -0 "$pid" 2>/dev/null; do
  a=$(field RssAnon) f=$(field RssFile) h=$(field VmHWM)
  [ -n "$a" ] && [ "$a" -gt "$anon" ] && anon=$a
  [ -n "$f" ] && [ "$f" -gt "$file" ] && file=$f
  [ -n "$h" ] && hwm=$h
  sleep 0.05
done
wait "$pid"; rc=$?
[ "$rc" = 0 ] || cat "$log" >&2
rm -f "$log"
echo "exit $rc  peak RssAnon $((anon / 1024)) MiB  peak RssFile $((file / 1024)) MiB  VmHWM $((hwm / 1024)) MiB"
