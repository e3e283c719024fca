#!/usr/bin/env bash
# Runs the CPU benchmarks whose figures docs/performance.md quotes. Needs a
# built tree (scripts/test.sh or cmake --build build). Models are made under
# build/bench-models (nano-4b: 8 GB of bf16, made once).
#   bench/run_all.sh [prefill|sp|ops|all]
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
models=build/bench-models
mkdir -p "$models"
# Ranks start through build/mpiexec-tests: mpiexec with the flags of the build's MPI.
# This CPU's fp32 peak: 2 cores x 2.3 GHz x 2 AVX-512 FMA units x 16 lanes x 2 flops.
peak=294
[ -f "$models/demo/config.json" ] || build/ringscan make-model --preset demo --out "$models/demo"

if [ "$what" = prefill ] || [ "$what" = all ]; then
  [ -f "$models/nano-4b/config.json" ] || build/ringscan make-model --preset nano-4b --out "$models/nano-4b"
  for t in 1024 4096 16384; do build/bench/bench_prefill --model "$models/demo" --tokens "$t" --peak-gflops $peak; done
  for t in 128 512; do build/bench/bench_prefill --model "$models/nano-4b" --tokens "$t" --repeat 1 --peak-gflops $peak; done
fi

if [ "$what" = ops ] || [ "$what" = all ]; then
  # Every op alone at nano-4b's shapes on the cpu backend (the op tests' perf mode).
  build/bench/bench_ops --backend cpu --preset nano-4b --tokens 512 --min-seconds 0.5
fi

if [ "$what" = sp ] || [ "$what" = all ]; then
  # One thread per rank so that P ranks on 2 cores compare fairly; P=4 is oversubscribed.
  for L in 16384 32768; do
    for np in 1 2 4; do
      for layout in zigzag contiguous; do
        OMP_NUM_THREADS=1 build/mpiexec-tests -np $np build/bench/bench_sp \
          --model "$models/demo" --tokens "$L" --layout $layout
      done
    done
  done
fi
