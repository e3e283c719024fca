#!/usr/bin/env bash
# cuda_emu: build the CUDA kernels and the GPU engine against the host
# emulator and run the CUDA tests on the CPU. See README.md.
#
#   tools/cuda_emu/run.sh [build|selftest|kernels|model|sp|jobs|all] [extra gtest args...]
#
# jobs: the `ringscan` program itself on the emulated GPU (score, embed,
# summarize, forward; 1 and 2 ranks) against --device cpu (jobs_check.py).
#
# Environment: CUDA_EMU_BUILD (build dir, default /tmp/ringscan-cuda-emu),
# JOBS (make -j, default 2), OPT (default -O2), NP (ranks for `sp`, default 2),
# PYTHON_H5 (a python with h5py and numpy for `jobs`; default: the venv of
# tools/h5check/ensure_venv.sh),
# CUDA_EMU_ABORT=1 (abort at the first emulator error report),
# CUDA_EMU_DEVICES=0 (pretend there is no GPU: the tests must skip).
# A test program that saw an emulator error report exits 1 even if its tests
# passed (the self-test, whose faults are deliberate, runs with
# CUDA_EMU_EXPECT_ERRORS=1).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
B=${CUDA_EMU_BUILD:-/tmp/ringscan-cuda-emu}
what=${1:-all}
shift || true
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

build() { make -s -C "$here" -j"${JOBS:-2}" ROOT="$root" B="$B" OPT="${OPT:--O2}" "$@"; }

status=0
run_kernels() {
  build kernels
  "$B/test_kernels_cuda" "$@" || status=$?
  "$B/test_backend_ops" "$@" || status=$?
}
run_model() { build model; "$B/test_device_model" "$@" || status=$?; }
run_sp() {
  build sp
  # Open MPI's mpirun, flags and variables: the Makefile builds with Open MPI's mpicxx
  # (--showme), whichever MPI the CMake build uses.
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    mpirun --oversubscribe -np "${NP:-2}" "$B/test_device_sp" "$@" || status=$?
}
# The GPU engine end to end through the real program (extra args: none; gtest
# filters given to `all` are not for it).
run_jobs() {
  build ringscan
  local py
  py=${PYTHON_H5:-$("$root/tools/h5check/ensure_venv.sh")}
  "$py" "$here/jobs_check.py" --ringscan "$B/ringscan" || status=$?
}

case "$what" in
  build) build all selftest ringscan ;;
  selftest) build selftest; CUDA_EMU_EXPECT_ERRORS=1 "$B/selftest" || status=$? ;;
  kernels) run_kernels "$@" ;;
  model) run_model "$@" ;;
  sp) run_sp "$@" ;;
  jobs) run_jobs ;;
  all) build all selftest ringscan; CUDA_EMU_EXPECT_ERRORS=1 "$B/selftest" || status=$?; run_kernels "$@"; run_model "$@"; run_sp "$@"; run_jobs ;;
  *) echo "usage: $0 [build|selftest|kernels|model|sp|jobs|all] [gtest args...]" >&2; exit 2 ;;
esac
exit $status
