#!/usr/bin/env bash
# Installs every Debian package that ringscan's build and tests need.
# Idempotent and quiet: when everything is present it only runs dpkg-query.
#   scripts/setup.sh           the default build (Open MPI)
#   scripts/setup.sh --mpich   also MPICH and its parallel HDF5, for a second build against
#                              MPICH (scripts/test-mpich.sh). Debian keeps Open MPI the
#                              default (mpirun, mpicc, h5pcc point to it); MPICH's tools are
#                              the *.mpich names.
set -euo pipefail
with_mpich=0
case "${1:-}" in
  "") ;;
  --mpich) with_mpich=1 ;;
  *) echo "usage: scripts/setup.sh [--mpich]" >&2; exit 2 ;;
esac

packages=(
  build-essential cmake pkg-config git
  openmpi-bin libopenmpi-dev
  libhdf5-openmpi-dev hdf5-tools
  libboost-program-options-dev
  nlohmann-json3-dev
  libpcre2-dev
  libopenblas-openmp-dev
  libgtest-dev googletest libbenchmark-dev
  python3 python3-venv python3-pip
  # scripts/fuzz.sh: clang with libFuzzer and the sanitizers' runtimes, and clang's OpenMP
  clang libclang-rt-14-dev libomp-dev
  # Slurm for slurm/ and its test (a one-machine cluster): daemons, client, munge
  # authentication; mpi_pmix.so (srun --mpi=pmix) is in slurm-wlm-basic-plugins and
  # loads libpmix2's libpmix.so through libpmix-dev's symlink (OpenMPI uses the same PMIx).
  slurmctld slurmd slurm-client slurm-wlm-basic-plugins munge libpmix2 libpmix-dev
  # tests/portable: the default binary under qemu-x86_64 -cpu Haswell (an AVX2 CPU without AVX-512)
  qemu-user
  # tests/jobs/test_report.py: `ringscan report`'s page rendered by headless Chromium
  chromium
)

if [ $with_mpich -eq 1 ]; then packages+=(mpich libmpich-dev libhdf5-mpich-dev); fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
