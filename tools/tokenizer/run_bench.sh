#!/usr/bin/env bash
# Tokenizer throughput, ringscan vs HF tokenizers, same machine, same corpus.
#   tools/tokenizer/run_bench.sh [BUILD_DIR] [THREADS]     (defaults: build, 1,2)
# Needs the venv: python3 -m venv tools/.venv-tokenizer &&
#   tools/.venv-tokenizer/bin/pip install -r tools/tokenizer/requirements.txt
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
threads=${2:-1,2}
py=tools/.venv-tokenizer/bin/python
corpus="$build/bench_tokenizer_corpus"
if [ ! -f "$corpus/files.txt" ] || [ ! -f "$corpus/tok32768/tokenizer.json" ]; then
  "$py" tools/tokenizer/make_bench_corpus.py "$corpus" --train-vocab 32768
fi
cmake --build "$build" --target bench_tokenizer >/dev/null
for tok in tests/tokenizer/fixtures/demo "$corpus/tok32768"; do
  echo "== tokenizer $tok"
  "$build/bench/tokenizer/bench_tokenizer" --tokenizer "$tok" --list "$corpus/files.txt" --threads "$threads"
  "$py" tools/tokenizer/bench_hf.py --tokenizer "$tok" --list "$corpus/files.txt" --threads "$threads"
done
