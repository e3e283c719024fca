#!/bin/bash
# usage: check_dependencies.sh <cmake> <source dir> <build dir> <MPI flavor: "Open MPI" or "MPICH">
# Configures ringscan afresh twice, as a cluster user's first configure would go:
#  1. with every pkg-config .pc file hidden (PKG_CONFIG_LIBDIR: an empty folder): it must
#     succeed and find each dependency exactly where this build's configure found it
#     (<build>/ringscan-dependencies.txt), none through pkg-config. This build was
#     compiled, linked and tested with those same libraries, so an identical result
#     stands for the build too (a second full build would take ~10 min on CI's 2 cores).
#  2. with an HDF5 compiler wrapper that reports a serial HDF5: it must stop with the
#     one sentence saying a parallel HDF5 is needed;
#  3. with an mpiexec of the other MPI (Open MPI for an MPICH build and the reverse): it
#     must stop with the sentence naming the mismatch;
#  4. with a CUDAToolkit_ROOT that has no nvcc: it must stop saying so.
# The MPI and HDF5 choices of this build are passed on, so an MPICH build checks MPICH.
set -euo pipefail
cmake=$1 src=$2 build=$3 flavor=$4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
cache_value() { sed -nE "s/^$1:[A-Z]+=(.*)/\1/p" "$build/CMakeCache.txt" | head -1; }

args=(-DRINGSCAN_WITH_CUDA=OFF -DRINGSCAN_BUILD_TESTS=OFF -DRINGSCAN_BUILD_BENCH=OFF)
for var in MPI_C_COMPILER MPI_CXX_COMPILER MPIEXEC_EXECUTABLE HDF5_C_COMPILER_EXECUTABLE CMAKE_PREFIX_PATH; do
  val=$(cache_value "$var")
  [[ -n "$val" && "$val" != *-NOTFOUND ]] && args+=("-D$var=$val")
done

mkdir "$work/no-pc"
echo "== configure with pkg-config's files hidden: ${args[*]}"
PKG_CONFIG_LIBDIR="$work/no-pc" PKG_CONFIG_PATH="" \
  "$cmake" -S "$src" -B "$work/b1" "${args[@]}" >"$work/b1.log" 2>&1 || { cat "$work/b1.log"; fail "configure failed without .pc files"; }
grep -q "(fallback)" "$work/b1/ringscan-dependencies.txt" && { cat "$work/b1/ringscan-dependencies.txt"; fail "a dependency came from pkg-config although its files were hidden"; }
grep -q "(fallback)" "$build/ringscan-dependencies.txt" && { cat "$build/ringscan-dependencies.txt"; fail "this build took a dependency from pkg-config"; }
diff -u "$build/ringscan-dependencies.txt" "$work/b1/ringscan-dependencies.txt" \
  || fail "without .pc files the dependencies differ from this build's (above)"
cat "$work/b1/ringscan-dependencies.txt"

# A wrapper that reports the same HDF5 as serial (its -showconfig says "Parallel HDF5: no").
wrapper=$(cache_value HDF5_C_COMPILER_EXECUTABLE)
[[ -x "$wrapper" ]] || fail "this build found HDF5 without a compiler wrapper ($wrapper); the serial check needs one"
cat >"$work/h5cc" <<SH
#!/bin/sh
"$wrapper" "\$@" | sed 's/Parallel HDF5: yes/Parallel HDF5: no/'
SH
chmod +x "$work/h5cc"
serial_args=("${args[@]/#-DHDF5_C_COMPILER_EXECUTABLE=*/-DHDF5_C_COMPILER_EXECUTABLE=$work/h5cc}")
echo "== configure with a serial HDF5"
if "$cmake" -S "$src" -B "$work/b2" "${serial_args[@]}" >"$work/b2.log" 2>&1; then
  fail "configure accepted a serial HDF5"
fi
# CMake wraps the message's lines: join them before looking for the sentence.
tr -s ' \n' '  ' <"$work/b2.log" | grep -q "is serial, but ringscan writes one file from all ranks and needs a parallel HDF5" \
  || { cat "$work/b2.log"; fail "configure failed without saying that the HDF5 is serial"; }
grep -A3 "CMake Error" "$work/b2.log" | head -6

# An mpiexec of the other MPI than the library's (the usual mistake with two MPIs on PATH).
if [[ "$flavor" == MPICH ]]; then
  printf '#!/bin/sh\necho "mpirun (Open MPI) 4.1.4"\n' >"$work/mpiexec"; other="Open MPI"
else
  printf '#!/bin/sh\necho "HYDRA build details:"\necho "    Version: 4.0.2"\n' >"$work/mpiexec"; other="MPICH"
fi
chmod +x "$work/mpiexec"
echo "== configure with $other's mpiexec"
mismatch_args=("${args[@]/#-DMPIEXEC_EXECUTABLE=*/-DMPIEXEC_EXECUTABLE=$work/mpiexec}")
if "$cmake" -S "$src" -B "$work/b3" "${mismatch_args[@]}" >"$work/b3.log" 2>&1; then
  fail "configure accepted $other's mpiexec for a library of the other MPI"
fi
tr -s ' \n' '  ' <"$work/b3.log" | grep -q "is $other's launcher but the MPI library found" \
  || { cat "$work/b3.log"; fail "configure failed without naming the MPI mismatch"; }
# CUDAToolkit_ROOT names the toolkit whose nvcc (and so libraries) the build takes; one
# without bin/nvcc is refused rather than replaced by another toolkit.
echo "== configure with a CUDAToolkit_ROOT that holds no toolkit"
if "$cmake" -S "$src" -B "$work/b4" "${args[@]/#-DRINGSCAN_WITH_CUDA=OFF/-DRINGSCAN_WITH_CUDA=AUTO}" \
     -DCUDAToolkit_ROOT="$work/no-pc" >"$work/b4.log" 2>&1; then
  fail "configure accepted a CUDAToolkit_ROOT without nvcc"
fi
tr -s ' \n' '  ' <"$work/b4.log" | grep -q "CUDAToolkit_ROOT is $work/no-pc but it has no bin/nvcc" \
  || { cat "$work/b4.log"; fail "configure failed without naming CUDAToolkit_ROOT"; }
echo PASS
