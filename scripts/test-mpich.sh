#!/usr/bin/env bash
# The test suite against MPICH instead of Debian's default Open MPI: installs MPICH and
# its parallel HDF5 (scripts/setup.sh --mpich), configures a separate build folder
# (build-mpich/, or RINGSCAN_MPICH_BUILD) against MPICH's compiler wrappers, launcher
# and h5pcc, builds it and runs ctest there. Further arguments go to ctest.
#   scripts/test-mpich.sh                 everything built, every test but those below
#   scripts/test-mpich.sh --multi-rank    only what starts ranks through mpiexec: the
#                                         multi-rank GoogleTest runs, the error-exit runs,
#                                         `forward` on 3 ranks, and the configure checks
#                                         (a new multi-rank test's program goes in `targets`:
#                                         ctest reports it "Not Run" otherwise)
# Not run here: cuda_emulated, whose emulator build (tools/cuda_emu/Makefile) takes
# Debian's default mpicxx (Open MPI) whatever this build uses, and checks CUDA logic,
# not MPI. RINGSCAN_WITH_CUDA=OFF: the CUDA objects are the same as the default build's.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=()
select=(-E '^cuda_emulated$')
if [[ "${1:-}" == --multi-rank ]]; then
  shift
  targets=(--target ringscan test_comm_mpi comm_error_probe test_sequence_parallel test_sharded_decode
           test_io_store_mpi test_job_library test_decode)
  select=(-R '_np[0-9]+$|^comm_error_|^comm_harness_|^cmake_dependencies$|^test_decode$')
fi
scripts/setup.sh --mpich
build=${RINGSCAN_MPICH_BUILD:-build-mpich}
jobs=${JOBS:-$(nproc)}
t0=$(date +%s)
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DRINGSCAN_WITH_CUDA=OFF \
  -DMPI_C_COMPILER=/usr/bin/mpicc.mpich -DMPI_CXX_COMPILER=/usr/bin/mpicxx.mpich \
  -DMPIEXEC_EXECUTABLE=/usr/bin/mpiexec.mpich -DHDF5_C_COMPILER_EXECUTABLE=/usr/bin/h5pcc.mpich \
  ${RINGSCAN_CMAKE_ARGS:-} >"$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
grep -E "ringscan: (MPI|HDF5)" "$build.configure.log"
grep -q "ringscan: MPI is MPICH" "$build.configure.log" || { echo "test-mpich: the build did not find MPICH" >&2; exit 1; }
cmake --build "$build" -j"$jobs" "${targets[@]}"
t1=$(date +%s)
# No Open MPI variables may be needed: none reach the tests from here.
while read -r v; do unset "$v"; done < <(env | sed -n 's/^\(OMPI_[A-Za-z0-9_]*\)=.*/\1/p')
status=0
ctest --test-dir "$build" --output-on-failure -j"$jobs" "${select[@]}" "$@" || status=$?
t2=$(date +%s)
echo "test-mpich: build $((t1 - t0)) s, tests $((t2 - t1)) s"
exit $status
