#!/usr/bin/env bash
# Fresh machine to a first result: builds ringscan, writes the built-in demo
# model (random weights, demo tokenizer) and runs it over a few thousand tokens.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target ringscan
model=build/demo-model
[ -f "$model/config.json" ] || build/ringscan make-model --preset demo --out "$model"
build/ringscan info --model "$model" --tokens 4096
# 4096 deterministic token ids; the batch jobs (score/embed) will replace this with real documents.
ids=build/demo-ids.txt
awk 'BEGIN { s = 1; for (i = 0; i < 4096; i++) { s = (s * 1103515245 + 12345) % 2147483648; printf "%d ", 1000 + s % 3096 } }' > "$ids"
start=$(date +%s.%N)
build/ringscan forward --model "$model" --ids-file "$ids" --top-k 3 > build/demo-forward.jsonl
end=$(date +%s.%N)
echo "first positions:"
head -n 3 build/demo-forward.jsonl
awk -v s="$start" -v e="$end" 'END { printf "forward over %d tokens in %.2f s\n", NR, e - s }' build/demo-forward.jsonl
