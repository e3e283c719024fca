#!/usr/bin/env bash
# End-to-end throughput of `ringscan score` on a generated corpus (many small
# files plus a few long ones) with P = 1 and 2 ranks, and where the time goes
# (the job's own "time (slowest rank)" line: read+tokenize, compute, of which
# communication, write). Needs a built tree.
#   bench/score/run.sh [small_files] [long_files] [long_words]
set -euo pipefail
cd "$(dirname "$0")/../.."
small=${1:-400}; long=${2:-3}; long_words=${3:-12000}
work=build/bench-score
mkdir -p "$work"
model=build/bench-models/demo
[ -f "$model/tokenizer.json" ] || build/ringscan make-model --preset demo --out "$model" >/dev/null 2>&1
corpus="$work/corpus-$small-$long-$long_words"
if [ ! -d "$corpus" ]; then
  mkdir -p "$corpus"
  python3 - "$corpus" "$small" "$long" "$long_words" <<'PY'
import random, sys, os
out, small, long, long_words = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(7)
vocab = "int return the value for while x y = + ( ) { } ; if else data struct class void const auto".split()
def text(n): return " ".join(rng.choice(vocab) for _ in range(n)) + "\n"
for i in range(small):
    open(os.path.join(out, f"small{i:04d}.txt"), "w").write(text(rng.randint(50, 600)))
for i in range(long):
    open(os.path.join(out, f"long{i}.txt"), "w").write(text(long_words))
PY
fi
# build/mpiexec-tests: mpiexec with the flags of the build's MPI (cmake/RingscanMpi.cmake).
for np in 1 2; do
  threads=$((2 / np))
  rm -rf "$work/out-$np.h5" "$work/out-$np.h5.parts"
  start=$(date +%s.%N)
  OMP_NUM_THREADS=$threads build/mpiexec-tests -np $np build/ringscan score --model "$model" \
    --input "$corpus" --out "$work/out-$np.h5" --progress-interval 1000 2> "$work/log-$np.txt"
  end=$(date +%s.%N)
  tokens=$(h5dump -d /tokens/ids -H "$work/out-$np.h5" | grep -o 'DATASPACE  SIMPLE { ( [0-9]*' | grep -o '[0-9]*$')
  echo "P=$np (OMP_NUM_THREADS=$threads): $tokens tokens in $(echo "$end - $start" | bc) s = $(echo "$tokens / ($end - $start)" | bc) tokens/s"
  grep "time (slowest rank)" "$work/log-$np.txt"
done
