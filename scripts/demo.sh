#!/usr/bin/env bash
# Fresh machine to a first result: installs dependencies, builds ringscan,
# writes the built-in demo model (random weights + demo tokenizer: a complete
# checkpoint), scores this repository's own C++ source as codebases (one
# document per top-level folder) on 2 MPI ranks, and shows the result table.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target ringscan
model=build/demo-model
[ -f "$model/tokenizer.json" ] || build/ringscan make-model --preset demo --out "$model"
out=build/demo-scores.h5
# One thread per rank: 2 ranks on a 2-core machine. --overwrite: a rerun after a
# change of model or options replaces the old file (an identical rerun resumes).
# build/mpiexec-tests: mpiexec with the flags of the MPI CMake found (cmake/RingscanMpi.cmake).
OMP_NUM_THREADS=1 build/mpiexec-tests -np 2 build/ringscan score \
  --model "$model" --mode codebase --input src --input kernels --input comm --input jobs \
  --include '*.cpp' --include '*.h' --max-tokens 16384 --out "$out" --overwrite
build/ringscan inspect "$out" --sort perplexity --desc
# The same result as one offline HTML page (ranked files, heat maps over the source).
build/ringscan report "$out" --out build/demo-report.html
echo "report: build/demo-report.html"
