#!/usr/bin/env bash
# Holds the performance model (src/runtime/perf_model.h, `ringscan info
# --calibration`) against what this machine can measure: the demo model's
# sequence-parallel prefill on P = 1, 2 and 4 CPU ranks (one thread each;
# P = 4 puts 2 ranks on each core, modelled as 2 ranks per device), with the
# model calibrated from bench_ops on one thread and bench_comm's ring rate, all
# measured in this one run. Prints predicted and measured seconds per row.
#
#   bench/perf_model/validate_cpu.sh [build-dir]     (default: build)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
cores=$(nproc)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=1
mpi=("$build/mpiexec-tests")  # mpiexec with the flags of the build's MPI (cmake/RingscanMpi.cmake)

"$build/ringscan" make-model --preset demo --out "$tmp/demo" >/dev/null
"$build/bench/bench_ops" --backend cpu --preset demo --tokens 4096 --min-seconds 0.2 >"$tmp/calib.jsonl" 2>/dev/null
# The link between two ranks: one 3.75 MiB state message of bench_comm's state scan (its ring
# pass interleaves stand-in compute, so its GB/s is not the link's).
gbs=$("${mpi[@]}" -np 2 "$build/bench/comm/bench_comm" 2>/dev/null |
  sed -nE 's/^state scan +([0-9.]+) ms +rank0 sent ([0-9.]+) MiB.*/\2 \1/p' |
  awk '{ printf "%.3f", $1 * 1048576 / ($2 * 1e-3) / 1e9 }')
[[ -n "$gbs" ]] || { echo "validate_cpu: bench_comm printed no state scan line" >&2; exit 1; }
echo "calibration: bench_ops one thread (demo shapes, 4096 tokens); link ${gbs} GB/s per rank (bench_comm), 10 us per message"
printf '%-7s %-3s %-11s %12s %12s %8s\n' tokens P layout predicted_s measured_s ratio
for L in 16384 32768; do
  for np in 1 2 4; do
    for layout in zigzag contiguous; do
      [[ $np -eq 1 && $layout == contiguous ]] && continue
      per_device=$(( np > cores ? (np + cores - 1) / cores : 1 ))
      pred=$("$build/ringscan" info --preset demo --calibration "$tmp/calib.jsonl" --tokens "$L" --ranks "$np" \
        --ranks-per-device "$per_device" --layout "$layout" --link-gbs "$gbs" --link-us 10 |
        sed -nE 's/^  total ([0-9.]+) s.*/\1/p')
      meas=$("${mpi[@]}" -np "$np" "$build/bench/bench_sp" --model "$tmp/demo" --tokens "$L" --layout "$layout" |
        python3 -c 'import json,sys; print([json.loads(l) for l in sys.stdin if l.startswith("{")][-1]["seconds"])')
      printf '%-7s %-3s %-11s %12.3f %12.3f %8.2f\n' "$L" "$np" "$layout" "$pred" "$meas" \
        "$(python3 -c "print($pred / $meas)")"
    done
  done
done
