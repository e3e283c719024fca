#!/usr/bin/env bash
# GPU check for a short lease (one H200, well under 8 minutes): configures a
# CUDA build for sm_90 only, builds just the CUDA kernel tests and the NCCL
# communicator tests, runs them, and prints one table (test, result, seconds),
# also written to $OUT/gpu-check.txt when OUT is set.
#
# Honest by design: no visible GPU is an error (exit 2), not a pass; a test
# that skips itself on this machine although its GPUs are present counts as a
# failure. Only comm_nccl_np2 may skip, and only when fewer than 2 GPUs are
# visible (NCCL needs one GPU per rank); the table says so.
#
# Usage: scripts/gpu-check.sh [build-dir]     (default: build-gpu)
# Needs the packages of scripts/setup.sh (MPI, HDF5, ...): configure needs them.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-gpu}
t_start=$(date +%s)
die() { echo "gpu-check: FAILED: $*" >&2; [[ -n "${OUT:-}" ]] && echo "gpu-check: FAILED: $*" >"$OUT/gpu-check.txt"; exit 2; }

# --- a GPU must be there ---------------------------------------------------------
command -v nvidia-smi >/dev/null || die "nvidia-smi not found: this machine has no NVIDIA driver, so no GPU to check"
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
[[ "$gpus" -ge 1 ]] || die "nvidia-smi lists no GPU"
nvidia-smi -L
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

# --- configure and build only what is checked -------------------------------------
jobs=$(nproc)
t0=$(date +%s)
mkdir -p "$build"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DRINGSCAN_WITH_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DRINGSCAN_BUILD_BENCH=OFF -DRINGSCAN_BUILD_TESTS=ON \
  >"$build/gpu-check-configure.log" 2>&1 || { tail -30 "$build/gpu-check-configure.log"; die "configure failed (log: $build/gpu-check-configure.log)"; }
t1=$(date +%s)
cmake --build "$build" -j"$jobs" --target test_kernels_cuda test_comm_nccl \
  || die "build of test_kernels_cuda / test_comm_nccl failed"
t2=$(date +%s)
echo "gpu-check: configure $((t1 - t0)) s, build $((t2 - t1)) s"

# --- run ---------------------------------------------------------------------------
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tests=(test_kernels_cuda comm_nccl_np1 comm_nccl_np2)
regex="^($(IFS='|'; echo "${tests[*]}"))\$"
log="$build/gpu-check-ctest.log"
ctest --test-dir "$build" -R "$regex" --output-on-failure --timeout 180 2>&1 | tee "$log"

# --- one table ----------------------------------------------------------------------
table=$(mktemp)
status=0
printf '%-20s %-8s %8s  %s\n' test result seconds note >"$table"
for t in "${tests[@]}"; do
  # ctest line: " 1/3 Test #27: test_kernels_cuda ....   Passed    1.23 sec"
  line=$(grep -E "Test +#[0-9]+: $t " "$log" | tail -1)
  secs=$(sed -nE 's/.* ([0-9.]+) sec$/\1/p' <<<"$line")
  note=""
  if [[ -z "$line" ]]; then
    result=FAIL; note="did not run (not registered? check the CUDA configure)"
  elif grep -q "Passed" <<<"$line"; then
    result=pass
  elif grep -q "Skipped" <<<"$line"; then
    if [[ "$t" == comm_nccl_np2 && "$gpus" -lt 2 ]]; then
      result=skip; note="needs 2 GPUs, $gpus visible"
    else
      result=FAIL; note="skipped although $gpus GPU(s) are visible"
    fi
  else
    result=FAIL
  fi
  [[ "$result" == FAIL ]] && status=1
  printf '%-20s %-8s %8s  %s\n' "$t" "$result" "${secs:--}" "$note" >>"$table"
done
echo
echo "gpu-check on $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) x $gpus, total $(( $(date +%s) - t_start )) s:"
cat "$table"
if [[ -n "${OUT:-}" ]]; then
  { cat "$table"; echo; echo "configure $((t1 - t0)) s, build $((t2 - t1)) s, total $(( $(date +%s) - t_start )) s"; } >"$OUT/gpu-check.txt"
  cp "$log" "$OUT/gpu-check-ctest.log" 2>/dev/null || true
fi
rm -f "$table"
[[ $status -eq 0 ]] && echo "gpu-check: all checks passed" || echo "gpu-check: FAILED (see the table above)" >&2
exit $status
