#!/usr/bin/env bash
# Builds the libFuzzer targets (tools/fuzz, clang; its own build folder build-fuzz/),
# writes their seed corpora from the test fixtures, and runs each target for SECONDS
# (default 60). Any crash, uncaught exception, sanitizer report (ASan, UBSan), leak,
# allocation over 2 GiB or input slower than 10 s fails the script; the input that
# caused it is kept in build-fuzz/artifacts/<target>/ (replay: build-fuzz/fuzz_<target> FILE).
# The corpus grows across runs in build-fuzz/corpus/<target>/.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     targets: safetensors config tokenizer part_file result_reader
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift $(( $# > 0 ? 1 : 0 ))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(safetensors config tokenizer part_file result_reader)

scripts/setup.sh
CC=clang CXX=clang++ cmake -S tools/fuzz -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"$(nproc)" >/dev/null
rm -rf build-fuzz/seeds
build-fuzz/write_seeds build-fuzz/seeds

# Targets that read files write them to $TMPDIR: memory is faster than disk.
if [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
failed=()
for t in "${targets[@]}"; do
  corpus=build-fuzz/corpus/$t artifacts=build-fuzz/artifacts/$t log=build-fuzz/fuzz_$t.log
  mkdir -p "$corpus" "$artifacts"
  # timeout: libFuzzer stops itself at max_total_time; this only guards against a stuck process.
  if timeout $((seconds + 300)) build-fuzz/fuzz_"$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
       -malloc_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" build-fuzz/seeds/"$t" \
       >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1)
    cov=$(sed -E -n 's/.* cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+).*/coverage \1 edges, \2 features, corpus \3/p' <<<"$done_line")
    echo "fuzz_$t: clean, ${seconds} s, ${runs} runs ($((runs / (seconds > 0 ? seconds : 1)))/s), ${cov}"
  else
    echo "fuzz_$t: FAILED (see $log; the input is in $artifacts/)"
    grep -m3 -E 'ERROR|SUMMARY|what\(\)' "$log" || tail -5 "$log"
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}"
  exit 1
fi
