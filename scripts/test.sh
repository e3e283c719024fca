#!/usr/bin/env bash
# Fresh machine to green tests: installs system packages, configures, builds
# into build/ and runs the whole test suite (unit, multi-rank, fixtures).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${RINGSCAN_CMAKE_ARGS:-} >/dev/null
cmake --build build -j"$jobs"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ctest --test-dir build --output-on-failure -j"$jobs" "$@"
