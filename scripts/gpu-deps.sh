#!/usr/bin/env bash
# Build dependencies for a GPU machine that has CUDA but no package registry
# (the lent H200 machines): Debian 12 packages, unpacked into a private root.
#
#   scripts/gpu-deps.sh fetch       here (with apt): download the .debs into .gpu-deps/
#   source scripts/gpu-deps.sh activate
#                                   there: unpack them into /tmp/ringscan-deps (once; another
#                                   root with RINGSCAN_DEPS_ROOT) and export the paths CMake,
#                                   pkg-config, MPI and the loader need, and in
#                                   RINGSCAN_DEPS_CMAKE_ARGS the configure arguments that
#                                   pin every dependency to the root
#
# The list is what ringscan's binaries load (found with ldd and dpkg -S on a
# built tree) plus the -dev packages for headers, pkg-config and CMake files.
# Never the C/C++ runtime (libc6, libstdc++6, libgcc-s1, libgomp1): the GPU
# machine's own compiler brings those, and a second libc would break it.
# Open MPI is relocated with OPAL_PREFIX; .pc files are rewritten to the root.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
debs="$repo/.gpu-deps"
root=${RINGSCAN_DEPS_ROOT:-/tmp/ringscan-deps}

packages=(
  # MPI
  openmpi-bin openmpi-common libopenmpi3 libopenmpi-dev libpmix2 libevent-core-2.1-7 libevent-pthreads-2.1-7
  libhwloc15 libfabric1 libucx0 libibverbs1 ibverbs-providers librdmacm1 libnl-3-200 libnl-route-3-200
  libpsm2-2 libpsm-infinipath1 libnuma1 libmunge2 libudev1 libatomic1 libuuid1
  # parallel HDF5 and what it loads
  libhdf5-openmpi-103-1 libhdf5-openmpi-dev libhdf5-openmpi-hl-100 libhdf5-openmpi-cpp-103-1
  libhdf5-openmpi-hl-cpp-100 libhdf5-openmpi-fortran-102 libhdf5-openmpi-hl-fortran-100 libsz2 libaec0
  libcurl4 libbrotli1 libnghttp2-14 libpsl5 librtmp1 libssh2-1 libssl3 libgssapi-krb5-2 libkrb5-3
  libk5crypto3 libkrb5support0 libkeyutils1 libcom-err2 libldap-2.5-0 libsasl2-2 libgnutls30 libhogweed6
  libnettle8 libgmp10 libidn2-0 libunistring2 libp11-kit0 libtasn1-6 libffi8 libzstd1 zlib1g
  # the rest of the build
  libboost-program-options1.74.0 libboost-program-options1.74-dev libboost-program-options-dev libboost1.74-dev
  nlohmann-json3-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3 libpcre2-dev
  libopenblas0-openmp libopenblas-openmp-dev libgfortran5 libquadmath0
  libgtest-dev libbenchmark1debian libbenchmark-dev pkgconf pkgconf-bin libpkgconf3
)

fetch() {
  command -v apt-get >/dev/null || { echo "gpu-deps: fetch needs apt-get (Debian 12)" >&2; return 1; }
  mkdir -p "$debs"
  (cd "$debs" && apt-get download "${packages[@]}") >/dev/null || { echo "gpu-deps: apt-get download failed" >&2; return 1; }
  grep -qx '/.gpu-deps/' "$repo/.git/info/exclude" 2>/dev/null || echo '/.gpu-deps/' >>"$repo/.git/info/exclude"
  echo "gpu-deps: $(ls "$debs" | wc -l) packages, $(du -sh "$debs" | cut -f1) in $debs (git-ignored; carry it)"
}

activate() {
  [[ -d "$debs" ]] || { echo "gpu-deps: no $debs: run scripts/gpu-deps.sh fetch where apt works" >&2; return 1; }
  if [[ ! -f "$root/.unpacked" ]]; then
    mkdir -p "$root"
    for f in "$debs"/*.deb; do dpkg-deb -x "$f" "$root" || return 1; done
    # Absolute prefixes in pkg-config files point into the root instead.
    find "$root" -name '*.pc' -exec sed -i "s#^prefix=/usr#prefix=$root/usr#; s#=/usr/#=$root/usr/#g; s# -I/usr/# -I$root/usr/#g; s# -L/usr/# -L$root/usr/#g" {} +
    # Debian's alternatives (libopenblas.so.0, openblas.pc, mpicc) are not made by dpkg-deb -x.
    local lib="$root/usr/lib/x86_64-linux-gnu"
    ln -sf "$lib/openblas-openmp/libopenblas.so.0" "$lib/libopenblas.so.0"
    ln -sf "$lib/openblas-openmp/libopenblas.so" "$lib/libopenblas.so"
    mkdir -p "$lib/pkgconfig"
    ln -sf "$lib/openblas-openmp/pkgconfig/openblas.pc" "$lib/pkgconfig/openblas.pc" 2>/dev/null || true
    for w in mpicc mpicxx mpirun mpiexec; do
      [[ -e "$root/usr/bin/$w" ]] || ln -sf "$root/usr/bin/$w.openmpi" "$root/usr/bin/$w"
    done
    touch "$root/.unpacked"
  fi
  local lib="$root/usr/lib/x86_64-linux-gnu"
  # CMake's HDF5 and OpenBLAS searches read these (idempotent, so a root unpacked by an
  # older version of this script is fixed too): h5pcc's install prefix, OpenBLASConfig's paths.
  sed -i "s#^prefix=\"/usr\"#prefix=\"$root/usr\"#" "$root/usr/bin/h5pcc.openmpi"
  sed -i "s# /usr/# $root/usr/#g" "$lib/openblas-openmp/cmake/openblas/OpenBLASConfig.cmake"
  export RINGSCAN_DEPS_ROOT="$root"
  export PATH="$root/usr/bin:$PATH"
  export OPAL_PREFIX="$root/usr"  # Open MPI finds its wrappers' data, plugins and help files here
  export LD_LIBRARY_PATH="$lib:$lib/openmpi/lib:$lib/openblas-openmp:$lib/hdf5/openmpi${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # Only the root's .pc files: LIBDIR replaces pkg-config's default search path, so a host's
  # own openblas, libpcre2-8 or hdf5-openmpi is never seen.
  export PKG_CONFIG_LIBDIR="$lib/pkgconfig:$lib/openblas-openmp/pkgconfig:$root/usr/share/pkgconfig"
  unset PKG_CONFIG_PATH
  export CMAKE_PREFIX_PATH="$root/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  # A prefix path comes first but is not enough: a package the root lacks a component of
  # can still be taken from the host (the lent machine's Boost 1.83 has no program_options;
  # its Open MPI is on PATH). Name each package's config file and compiler wrapper.
  local boost_dir
  boost_dir=$(echo "$lib"/cmake/Boost-*)
  [[ -f "$boost_dir/BoostConfig.cmake" ]] || { echo "gpu-deps: no BoostConfig.cmake under $lib/cmake" >&2; return 1; }
  export RINGSCAN_DEPS_CMAKE_ARGS="-DBoost_DIR=$boost_dir \
-Dnlohmann_json_DIR=$root/usr/share/cmake/nlohmann_json -DGTest_DIR=$lib/cmake/GTest -Dbenchmark_DIR=$lib/cmake/benchmark \
-DHDF5_C_COMPILER_EXECUTABLE=$root/usr/bin/h5pcc.openmpi -DOpenBLAS_DIR=$lib/openblas-openmp/cmake/openblas \
-DPKG_CONFIG_EXECUTABLE=$root/usr/bin/pkg-config \
-DMPI_C_COMPILER=$root/usr/bin/mpicc -DMPI_CXX_COMPILER=$root/usr/bin/mpicxx -DMPIEXEC_EXECUTABLE=$root/usr/bin/mpirun"
}

case "${1:-}" in
  fetch) fetch ;;
  activate) activate ;;
  *) echo "usage: scripts/gpu-deps.sh fetch | source scripts/gpu-deps.sh activate" >&2; false ;;
esac
