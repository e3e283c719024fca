#!/usr/bin/env bash
# cuda_emu: build the CUDA kernels and the GPU engine against the host
# emulator and run the CUDA tests on the CPU. See README.md.
#
#   tools/cuda_emu/run.sh [build|selftest|kernels|model|sp|comm|jobs|all] [extra gtest args...]
#
# model: the GPU model tests (test_device_model), then bench_gpu_summarize --tiny and bench_gpu_ask --tiny
# (whole, chunked and overlapped prefill in the summarize job's decoding).
# jobs: the `ringscan` program itself on the emulated GPU (score, embed,
# summarize, forward; 1 and 2 ranks) against --device cpu (jobs_check.py).
#
# Environment: CUDA_EMU_BUILD (build dir, default /tmp/ringscan-cuda-emu),
# JOBS (make -j, default 2), OPT (default -O2), NP (rank counts for `sp` and
# `comm`, default "1 2 3 4": each runs under mpirun once per count, with as many
# emulated GPUs as ranks unless CUDA_EMU_DEVICES says otherwise, so the NCCL
# path (emu_nccl.cpp, one GPU per rank) runs too),
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
# Then bench_gpu_summarize --tiny: whole, chunked and overlapped prefill must each report, the overlap taken;
# and bench_gpu_ask --tiny: the prefill and each question count must report.
run_model() {
  build model
  "$B/test_device_model" "$@" || status=$?
  echo "== bench_gpu_summarize --tiny"
  local out
  out=$("$B/bench_gpu_summarize" --tiny) || status=$?
  echo "$out"
  [[ $(grep -c '"bench": "gpu_summarize"' <<<"$out") -eq 3 ]] && grep -q '"overlapped": true' <<<"$out" ||
    { echo "bench_gpu_summarize: not three runs with the overlap taken"; status=1; }
  echo "== bench_gpu_ask --tiny"
  out=$("$B/bench_gpu_ask" --tiny) || status=$?
  echo "$out"
  [[ $(grep -c '"bench": "gpu_ask"' <<<"$out") -eq 2 ]] && grep -q '"bench": "gpu_ask_prefill"' <<<"$out" ||
    { echo "bench_gpu_ask: not a prefill line and two ask lines"; status=1; }
}
# Each rank count under mpirun, every rank on its own emulated GPU by default. Open MPI's
# mpirun, flags and variables: the Makefile builds with Open MPI's mpicxx (--showme),
# whichever MPI the CMake build uses.
mpi_runs() {
  local prog=$1 np
  shift
  for np in ${NP:-1 2 3 4}; do
    echo "== $(basename "$prog"): mpirun -np $np"
    CUDA_EMU_DEVICES=${CUDA_EMU_DEVICES:-$np} OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
      mpirun --oversubscribe -np "$np" "$prog" "$@" || status=$?
  done
}
# Then the GPU sharded decode, the saved decode state and the prefix-shared decode (ask) on 2 ranks sharing one emulated GPU (the MPI
# communicator, host-staged; their NCCL cases skip there), and bench_sp_gpu once over NCCL on 2 ranks: its JSON must report the
# exposed communication per layer and, with --generate, the sharded decode's tokens/s and bytes per step.
run_sp() {
  build sp
  mpi_runs "$B/test_device_sp" "$@"
  echo "== test_device_sp (sharded decode, saved state, prefix decode): mpirun -np 2, one emulated GPU shared"
  CUDA_EMU_DEVICES=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun --oversubscribe -np 2 \
    "$B/test_device_sp" --gtest_filter='*ShardedDecode*:*DeviceSavedState*:*PrefixDecode*' || status=$?
  echo "== bench_sp_gpu: mpirun -np 2 --comm nccl"
  local out
  out=$(CUDA_EMU_DEVICES=2 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun --oversubscribe -np 2 \
    "$B/bench_sp_gpu" --model "$root/tests/fixtures/hf/swiglu" --tokens 64 --repeat 1 --comm nccl \
    --generate 4 --docs 2) || status=$?
  echo "$out"
  grep -q '"exposed_comm_ms"' <<<"$out" && grep -q '"ring_bytes"' <<<"$out" || { echo "bench_sp_gpu: no per-layer report"; status=1; }
  grep -q '"decode_tokens_per_s"' <<<"$out" || { echo "bench_sp_gpu: no decode report"; status=1; }
}
# tests/comm over the emulated NCCL (device buffers), as test_comm_nccl runs on GPUs.
# Then 3 ranks on 2 emulated GPUs: every rank must stop with one sentence, not hang.
run_comm() {
  build comm
  mpi_runs "$B/test_comm_nccl" "$@"
  echo "== comm_error_probe nccl_crowded: 3 ranks, 2 GPUs"
  # More ranks than cores (CI has 2): Open MPI's oversubscription, as mpi_runs passes it.
  CUDA_EMU_DEVICES=2 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 \
    cmake -DMPIEXEC=mpirun -DNP=3 -DPROBE="$B/comm_error_probe" -DARGS=nccl_crowded -DMAX_LINES=3 \
      "-DEXPECT=the NCCL backend needs one GPU per rank, but this node runs 3 ranks on 2 visible GPU(s)" \
      -P "$root/tests/comm/check_error_exit.cmake" || status=$?
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
  comm) run_comm "$@" ;;
  jobs) run_jobs ;;
  all) build all selftest ringscan; CUDA_EMU_EXPECT_ERRORS=1 "$B/selftest" || status=$?; run_kernels "$@"; run_model "$@"; run_sp "$@"; run_comm; run_jobs ;;
  *) echo "usage: $0 [build|selftest|kernels|model|sp|comm|jobs|all] [gtest args...]" >&2; exit 2 ;;
esac
exit $status
