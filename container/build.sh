#!/usr/bin/env bash
# The steps of ringscan's container images, shared by container/ringscan.def (Apptainer /
# Singularity) and container/Dockerfile so that the two cannot drift:
#
#   container/build.sh source   on the host, in the repository: the committed tree (HEAD)
#                               as container/ringscan-src.tar.gz, the one file both recipes copy
#   container/build.sh deps     in the image, as root: the build's and run's packages (apt;
#                               Ubuntu 24.04, as in NVIDIA's CUDA images, or Debian 12)
#   container/build.sh build    in the image: unpack the source, configure with CUDA, build
#                               `ringscan`, install it into PREFIX and check that it runs
#   container/build.sh clean    in the image: the build folder, the source and apt's lists
#
# Environment: PREFIX (default /opt/ringscan), SRC (where the source is unpacked, default
# $PREFIX/src), TARBALL (default /tmp/ringscan-src.tar.gz), CUDA_ARCHS (default 80;90:
# A100 and H100/H200), JOBS (default: all CPUs), RINGSCAN_CMAKE_ARGS (more -D arguments).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PREFIX=${PREFIX:-/opt/ringscan}
SRC=${SRC:-$PREFIX/src}
TARBALL=${TARBALL:-/tmp/ringscan-src.tar.gz}
CUDA_ARCHS=${CUDA_ARCHS:-80;90}
JOBS=${JOBS:-$(nproc)}

# Debian 12 and Ubuntu 24.04 share these names. Open MPI: the MPI ringscan is tested with
# and the one whose PMIx a site's `srun --mpi=pmix` starts (container/README.md). No
# tests, benchmarks or Slurm: the image runs ringscan, the site brings the scheduler.
packages=(
  build-essential cmake git ca-certificates
  openmpi-bin libopenmpi-dev libhdf5-openmpi-dev hdf5-tools
  libboost-program-options-dev nlohmann-json3-dev libpcre2-dev libopenblas-openmp-dev
)

source_tarball() {
  local repo out
  repo=$(git -C "$here" rev-parse --show-toplevel)
  out="$here/ringscan-src.tar.gz"
  [[ -z "$(git -C "$repo" status --porcelain --untracked-files=no)" ]] \
    || echo "container: note: uncommitted changes are not in the image (it holds HEAD, $(git -C "$repo" rev-parse --short HEAD))" >&2
  git -C "$repo" archive --format=tar.gz -o "$out" HEAD
  echo "container: $out ($(du -h "$out" | cut -f1), $(git -C "$repo" rev-parse --short HEAD))"
}

deps() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  # NVIDIA's devel images bring NCCL; a plain CUDA install may not (NVIDIA's apt repository
  # is configured in their images).
  [[ -f /usr/include/nccl.h || -f /usr/local/cuda/include/nccl.h ]] \
    || apt-get install -y -qq --no-install-recommends libnccl-dev >/dev/null
}

build() {
  [[ -f "$TARBALL" ]] || { echo "container: no $TARBALL: run 'container/build.sh source' on the host first" >&2; exit 1; }
  mkdir -p "$SRC"
  tar -xzf "$TARBALL" -C "$SRC"
  # CUDA is required here (ON, not AUTO): an image without its GPU backend is a mistake.
  # cuDNN attention stays off: the images have no cudnn-frontend (scripts/cudnn-deps.sh).
  # shellcheck disable=SC2086  # RINGSCAN_CMAKE_ARGS is a list of -D arguments
  cmake -S "$SRC" -B "$SRC/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$PREFIX" \
    -DRINGSCAN_WITH_CUDA=ON -DRINGSCAN_WITH_CUDNN=OFF -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCHS" \
    -DRINGSCAN_BUILD_TESTS=OFF -DRINGSCAN_BUILD_BENCH=OFF ${RINGSCAN_CMAKE_ARGS:-}
  cmake --build "$SRC/build" -j"$JOBS" --target ringscan
  cmake --install "$SRC/build"
  # The installed binary runs (on the CPU: no GPU while an image is built).
  local tiny
  tiny=$(mktemp -d)
  # Image builds run as root, which Open MPI (the image's MPI) refuses unless told.
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  "$PREFIX/bin/ringscan" make-model --preset tiny --out "$tiny/model" >/dev/null
  "$PREFIX/bin/ringscan" info --model "$tiny/model" | grep -q '^parameters' \
    || { echo "container: the installed ringscan does not run" >&2; exit 1; }
  rm -rf "$tiny"
  echo "container: $PREFIX/bin/ringscan built and checked"
}

clean() {
  rm -rf "$SRC" "$TARBALL" /var/lib/apt/lists/*
}

case "${1:-}" in
  source) source_tarball ;;
  deps) deps ;;
  build) build ;;
  clean) clean ;;
  *) echo "usage: container/build.sh source | deps | build | clean" >&2; exit 2 ;;
esac
