#!/usr/bin/env bash
# The GPU check for a short lease (one H200, meant to finish in under 6
# minutes including the build): builds the CUDA engine for sm_90, runs every
# GPU test, then the GPU benchmarks, and prints one table. The table (and the
# raw logs) also go to $OUT when it is set.
#
#   scripts/gpu-check.sh [build-dir]          (default: build-gpu)
#   scripts/gpu-check.sh --configure-only [build-dir]
#                  no GPU needed: only choose the dependencies and configure,
#                  then print where each dependency was found (for testing
#                  this script; RINGSCAN_GPU_CMAKE_ARGS=-DRINGSCAN_WITH_CUDA=OFF
#                  where there is no nvcc)
#
# Tests: test_kernels_cuda (every CUDA op against its plain-loop reference),
# test_device_model (whole model against HF's logits and the CPU engine,
# greedy generation against HF generate, batched decode), device_sp_np1/np2
# (GPU sequence parallel = GPU single rank, and GPU sharded decode after it =
# single-rank GPU decode token for token; np2: two ranks sharing the GPU over
# MPI), comm_nccl_np1/np2 (the NCCL communicator; np2 needs 2 GPUs); then the
# jobs end to end: `score` of docs/ on the GPU against the CPU (perplexities
# within 2%) and `summarize` on the GPU; then the real-scale check
# (tools/hf_realscale: a random nano-4b made by HF transformers, ringscan on 1
# and 2 ranks against HF's fp32 logits, bounded by HF's own bf16 error), whose
# HF half runs during the build when python3 has torch and transformers.
# Benchmarks: bench_gpu on the nano-4b random checkpoint built in memory:
# prefill (score path) tokens/s and MFU at 4K/32K/128K tokens with a per-op GPU
# time profile of each, SSD scan and attention kernel throughput (the bf16
# tensor-core kernels against the bf16 peak, their fp32 references up to 32K
# against the fp32 peak), time to first token at 4K and 32K, decode tokens/s at
# batch 1, 8, 64 and 256 (CUDA-graph and op-by-op steps), peak GPU memory; then
# bench_ops --backend cuda (every op alone at the model's shapes at 4K tokens
# against its roofline: the op tests' perf mode); then the performance model
# (`ringscan info --calibration`) from those op rates: one GPU at 4K/32K/128K
# (to hold against the measured prefill) and the planned 1M tokens on 8 H200
# (NVLink) and 4M on 32 (InfiniBand). Then bench_gpu_summarize: the summarize
# job's decoding of a generated corpus on the nano-4b shape (documents/s,
# output tokens/s, inter-token stall, first token) with whole prefill, chunked
# prefill between decode steps, and the chunks overlapped on a second stream
# (RINGSCAN_GPU_SUMMARIZE_ARGS adds options). Then bench_sp_gpu on 2 ranks
# sharing the GPU (MPI), demo model: a 16K-token sequence-parallel prefill
# with its exposed communication per layer, then 4 such documents decoded 32
# tokens each with their KV caches sharded (decode tokens/s, bytes per step).
# Then bench_gpu_ask: prefill once, ask many on the nano-4b shape (a 64K-token
# prefix, 1/16/256 questions of 200 tokens; RINGSCAN_GPU_ASK_ARGS adds options).
#
# Honest by design: no visible GPU is an error (exit 2); a GPU test that skips
# itself although a GPU is visible counts as a failure (only comm_nccl_np2 may
# skip, with fewer than 2 GPUs).
#
# Needs the build dependencies of scripts/setup.sh. A machine without them and
# without a package registry (the lent GPU machines) can take them from
# .gpu-deps/, which scripts/gpu-deps.sh fetches on a machine with one: name
# .gpu-deps in the device run's carry list. When .gpu-deps is there, the build
# takes every dependency from it and none from the host (whose MPI or Boost may
# be on PATH or in /usr and unfit: the first lent machine's Boost 1.83 had no
# program_options), and the configure step fails if one came from elsewhere.
set -uo pipefail
cd "$(dirname "$0")/.."
configure_only=0
[[ "${1:-}" == --configure-only ]] && { configure_only=1; shift; }
build=${1:-build-gpu}
t_start=$(date +%s)
out_dir=${OUT:-}
die() {
  echo "gpu-check: FAILED: $*" >&2
  [[ -n "$out_dir" ]] && echo "gpu-check: FAILED: $*" >"$out_dir/gpu-check.txt"
  exit 2
}

# --- a GPU must be there ---------------------------------------------------------
if [[ $configure_only -eq 0 ]]; then
command -v nvidia-smi >/dev/null || die "nvidia-smi not found: this machine has no NVIDIA driver, so no GPU to check"
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
[[ "$gpus" -ge 1 ]] || die "nvidia-smi lists no GPU"
gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
fi

# --- dependencies --------------------------------------------------------------------
host_ld=${LD_LIBRARY_PATH-}  # python (torch) keeps the host's libraries; ringscan gets the deps'
deps_root="" deps_args=""
if [[ -d .gpu-deps ]]; then
  # shellcheck source=scripts/gpu-deps.sh
  source scripts/gpu-deps.sh activate || die "could not unpack .gpu-deps"
  deps_root=$RINGSCAN_DEPS_ROOT deps_args=$RINGSCAN_DEPS_CMAKE_ARGS
fi
command -v mpicxx >/dev/null || die "no MPI compiler (mpicxx): install scripts/setup.sh's packages, or carry .gpu-deps (scripts/gpu-deps.sh)"
mkdir -p "$build"
# cuDNN attention (optional, not emulated: checked here). Frontend headers in .gpu-deps/cudnn
# (scripts/cudnn-deps.sh fetch); libcudnn is the machine's (python's torch wheel on the lent one).
cudnn_args=$(LD_LIBRARY_PATH="$host_ld" scripts/cudnn-deps.sh cmake-args 2>"$build/gpu-check-cudnn.txt")

# --- the HF half of the real-scale check, on the GPU while the CPUs build --------------
realscale_dir="$build/gpu-check-realscale"
realscale_pid=""
if [[ $configure_only -eq 0 ]] && LD_LIBRARY_PATH="$host_ld" python3 -c "import torch, transformers" 2>/dev/null; then
  rm -rf "$realscale_dir"
  LD_LIBRARY_PATH="$host_ld" timeout 300 python3 tools/hf_realscale/realscale.py prepare --preset nano-4b \
    --device cuda --tokens 2048 --out "$realscale_dir" >"$build/gpu-check-realscale-prepare.log" 2>&1 &
  realscale_pid=$!
  trap '[[ -n "$realscale_pid" ]] && kill "$realscale_pid" 2>/dev/null' EXIT
fi

# --- configure and build what is checked ---------------------------------------------
jobs=$(nproc)
t0=$(date +%s)
cmake_args=(-DCMAKE_BUILD_TYPE=Release -DRINGSCAN_WITH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90
  -DRINGSCAN_BUILD_BENCH=ON -DRINGSCAN_BUILD_TESTS=ON $deps_args $cudnn_args ${RINGSCAN_GPU_CMAKE_ARGS:-})
# A cache made with other dependencies (the host's, before .gpu-deps came) keeps what it found
# (pkg-config results are never re-checked): then configure afresh.
stamp="$build/gpu-check-configure.args"
[[ -f "$build/CMakeCache.txt" && "$(cat "$stamp" 2>/dev/null)" != "${cmake_args[*]}" ]] && rm -f "$build/CMakeCache.txt"
cmake -S . -B "$build" "${cmake_args[@]}" \
  >"$build/gpu-check-configure.log" 2>&1 || { tail -30 "$build/gpu-check-configure.log"; die "configure failed (log: $build/gpu-check-configure.log)"; }
echo "${cmake_args[*]}" >"$stamp"

# Where each dependency was found; with .gpu-deps, anything outside its root is an error.
deps_found() {
  local cache="$build/CMakeCache.txt" bad=0 var val path
  for var in Boost_DIR Boost_INCLUDE_DIR nlohmann_json_DIR GTest_DIR benchmark_DIR PKG_CONFIG_EXECUTABLE \
    MPI_C_COMPILER MPI_CXX_COMPILER MPIEXEC_EXECUTABLE MPI_C_HEADER_DIR MPI_mpi_LIBRARY \
    HDF5_C_COMPILER_EXECUTABLE OpenBLAS_DIR RINGSCAN_OPENBLAS_LIBRARY RINGSCAN_PCRE2_LIBRARY RINGSCAN_PCRE2_INCLUDE_DIR; do
    val=$(sed -nE "s/^$var:[A-Z]+=(.*)/\1/p" "$cache" | head -1)
    [[ "$val" == *-NOTFOUND ]] && val=""
    printf '  %-22s %s\n' "$var" "${val:-(not set)}"
    for path in ${val//;/ }; do
      [[ -n "$deps_root" && "$path" != "$deps_root"/* ]] && bad=1
    done
  done
  # What CMake's configure says it linked (cmake/RingscanDependencies.cmake), each path.
  while read -r line; do
    printf '  %s\n' "$line"
    for path in $line; do
      path=${path%,}
      [[ -n "$deps_root" && "$path" == /* && "$path" != "$deps_root"/* ]] && bad=1
    done
  done <"$build/ringscan-dependencies.txt"
  return $bad
}
deps_found >"$build/gpu-check-deps.txt" || { cat "$build/gpu-check-deps.txt"; die "a dependency was found outside .gpu-deps ($deps_root): see above"; }
echo "gpu-check: dependencies from ${deps_root:-the host}:"
cat "$build/gpu-check-deps.txt"
cudnn_on=$(sed -nE 's/^RINGSCAN_CUDNN_ENABLED:INTERNAL=(.*)/\1/p' "$build/CMakeCache.txt")
cudnn_why=$(sed -nE 's/^RINGSCAN_CUDNN_WHY_OFF:INTERNAL=(.*)/\1/p' "$build/CMakeCache.txt")
echo "gpu-check: cuDNN attention ${cudnn_on:-OFF}${cudnn_why:+ ($cudnn_why)}; $(tail -1 "$build/gpu-check-cudnn.txt")"
[[ $configure_only -eq 1 ]] && exit 0
t1=$(date +%s)
cmake --build "$build" -j"$jobs" --target test_kernels_cuda test_backend_ops test_device_model test_device_sp test_comm_nccl bench_gpu bench_gpu_summarize bench_gpu_ask bench_sp_gpu bench_ops ringscan \
  >"$build/gpu-check-build.log" 2>&1 || { grep -E "error|Error" "$build/gpu-check-build.log" | head -30; die "build failed (log: $build/gpu-check-build.log)"; }
t2=$(date +%s)
echo "gpu-check: configure $((t1 - t0)) s, build $((t2 - t1)) s"

# --- tests -----------------------------------------------------------------------------
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tests=(test_kernels_cuda test_backend_ops test_device_model device_sp_np1 device_sp_np2 comm_nccl_np1 comm_nccl_np2)
regex="^($(IFS='|'; echo "${tests[*]}"))\$"
log="$build/gpu-check-ctest.log"
# The cuDNN tests run on their own below: a graph cuDNN refuses must not stop the benchmarks.
GTEST_FILTER='-AttentionCudnnCuda.*' RINGSCAN_REQUIRE_BACKENDS=cuda ctest --test-dir "$build" -R "$regex" --output-on-failure --timeout 240 >"$log" 2>&1
t3=$(date +%s)

table=$(mktemp)
status=0
printf '%-22s %-7s %8s  %s\n' test result seconds note >"$table"
for t in "${tests[@]}"; do
  # ctest line: " 1/3 Test #27: test_kernels_cuda ....   Passed    1.23 sec"
  line=$(grep -E "Test +#[0-9]+: $t " "$log" | tail -1)
  secs=$(sed -nE 's/.* ([0-9.]+) sec$/\1/p' <<<"$line")
  note=""
  if [[ -z "$line" ]]; then
    result=FAIL; note="did not run (not registered? check the CUDA configure)"
  elif grep -q "Passed" <<<"$line"; then
    result=pass
  elif grep -q "Skipped" <<<"$line"; then
    if [[ "$t" == comm_nccl_np2 && "$gpus" -lt 2 ]]; then
      result=skip; note="needs 2 GPUs, $gpus visible"
    else
      result=FAIL; note="skipped although $gpus GPU(s) are visible"
    fi
  else
    result=FAIL
  fi
  [[ "$result" == FAIL ]] && status=1
  printf '%-22s %-7s %8s  %s\n' "$t" "$result" "${secs:--}" "$note" >>"$table"
done

# --- the jobs end to end on the GPU engine ---------------------------------------------
# score this repo's docs with the demo model on the GPU and on the CPU: per-document
# perplexities within 2% (bf16 GEMM inputs on the GPU, fp32 on the CPU); summarize on
# the GPU must complete every document.
jobdir="$build/gpu-check-jobs"
rm -rf "$jobdir" && mkdir -p "$jobdir"
job_check() {
  "$build/ringscan" make-model --preset demo --out "$jobdir/model" >/dev/null &&
  "$build/ringscan" score --model "$jobdir/model" --input docs --out "$jobdir/cpu.h5" --device cpu --quiet &&
  "$build/ringscan" score --model "$jobdir/model" --input docs --out "$jobdir/gpu.h5" --device cuda --quiet &&
  "$build/ringscan" summarize --model "$jobdir/model" --input docs --out "$jobdir/sum.h5" --device cuda \
    --max-new-tokens 16 --quiet &&
  "$build/ringscan" inspect "$jobdir/cpu.h5" --sort path >"$jobdir/cpu.txt" &&
  "$build/ringscan" inspect "$jobdir/gpu.h5" --sort path >"$jobdir/gpu.txt" &&
  "$build/ringscan" inspect "$jobdir/sum.h5" --sort path >"$jobdir/sum.txt"
} >"$jobdir/log.txt" 2>&1
job_rows=""
if job_check; then
  job_rows=$(python3 - "$jobdir" <<'PY'
import sys
d = sys.argv[1]
def ppl(name):
    out = {}
    for line in open(f"{d}/{name}.txt"):
        f = line.split()
        if len(f) >= 4 and f[-1] == "ok":
            out[f[0]] = float(f[-2])
    return out
cpu, gpu = ppl("cpu"), ppl("gpu")
worst = max(abs(gpu[k] - cpu[k]) / cpu[k] for k in cpu) if cpu and cpu.keys() == gpu.keys() else float("inf")
ok = worst <= 0.02
print(f"{'score gpu = cpu':<22} {'pass' if ok else 'FAIL':<7} {'-':>8}  {len(cpu)} documents, max relative perplexity difference {worst:.2e} (bound 2e-2)")
n_sum = sum(1 for line in open(f"{d}/sum.txt") if line.rstrip().endswith(" ok"))
print(f"{'summarize on gpu':<22} {'pass' if n_sum == len(cpu) else 'FAIL':<7} {'-':>8}  {n_sum} of {len(cpu)} documents ok")
PY
)
else
  job_rows=$(printf '%-22s %-7s %8s  %s' "jobs on gpu" FAIL - "see $jobdir/log.txt: $(tail -1 "$jobdir/log.txt")")
fi
[[ -n "$job_rows" ]] && printf '%s\n' "$job_rows" >>"$table"
grep -q "FAIL" <<<"$job_rows" && status=1

# --- real scale: a random nano-4b from HF transformers, ringscan on 1 and 2 ranks --------
# Its HF half (prepare) started before the build; the row comes from `check`. Only a failing
# check (ringscan's numbers) stops the benchmarks; a missing or failing HF half fails the run
# after them.
late_status=0
if [[ "$cudnn_on" == ON ]]; then
  cudnn_log="$build/gpu-check-cudnn-test.log"; t_c=$(date +%s)
  if timeout 240 "$build/tests/kernels_cuda/test_kernels_cuda" --gtest_filter='AttentionCudnnCuda.*' >"$cudnn_log" 2>&1; then
    r=pass; n=$(grep -m1 '^cuDNN library' "$cudnn_log")
  else
    r=FAIL; n="$(grep -m1 -E 'Failure|what\(\)|cuda::attention_cudnn' "$cudnn_log" | cut -c1-150) (log: $cudnn_log)"; late_status=1
  fi
  printf '%-22s %-7s %8s  %s\n' "cudnn attention" "$r" "$(( $(date +%s) - t_c ))" "$n" >>"$table"
else
  printf '%-22s %-7s %8s  %s\n' "cudnn attention" skip - "not built: ${cudnn_why:-see configure log}" >>"$table"
fi
realscale_fail() { printf '%-22s %-7s %8s  %s' "realscale nano-4b" FAIL - "$1"; }
if [[ -z "$realscale_pid" ]]; then
  realscale_row=$(realscale_fail "python3 cannot import torch and transformers"); late_status=1
elif ! wait "$realscale_pid"; then
  realscale_row=$(realscale_fail "HF prepare failed or ran past 300 s: $(tail -1 "$build/gpu-check-realscale-prepare.log")")
  late_status=1
else
  # The build's launcher script (cmake/RingscanMpi.cmake): its MPI's flags and variables.
  realscale_row=$(LD_LIBRARY_PATH="$host_ld" RINGSCAN_LD_LIBRARY_PATH="${LD_LIBRARY_PATH-}" timeout 180 \
    python3 tools/hf_realscale/realscale.py check --dir "$realscale_dir" --ringscan "$build/ringscan" \
    --mpirun "$build/mpiexec-tests -np 2" --device cuda 2>"$build/gpu-check-realscale-check.log" | tail -1)
  [[ -n "$realscale_row" ]] || realscale_row=$(realscale_fail "check failed or ran past 180 s: $(tail -1 "$build/gpu-check-realscale-check.log")")
  grep -q "FAIL" <<<"$realscale_row" && status=1
fi
realscale_pid=""
printf '%s\n' "$realscale_row" >>"$table"
t_jobs=$(date +%s)

# --- benchmarks (after the tests: numbers from a failing engine mean nothing) ----------
bench_log="$build/gpu-check-bench.jsonl"
if [[ $status -eq 0 ]]; then
  "$build/bench/bench_gpu" --preset nano-4b ${RINGSCAN_GPU_BENCH_ARGS:-} >"$bench_log" 2>"$build/gpu-check-bench.err" \
    || { status=1; echo "bench_gpu failed:"; tail -5 "$build/gpu-check-bench.err"; }
  # Every op alone at the model's shapes (the op tests' perf mode).
  "$build/bench/bench_ops" --backend cuda --preset nano-4b --tokens 4096 --min-seconds 0.1 >>"$bench_log" \
    2>>"$build/gpu-check-bench.err" || { status=1; echo "bench_ops failed:"; tail -5 "$build/gpu-check-bench.err"; }
  # The summarize job's decoding end to end on a generated corpus: whole, chunked and overlapped prefill.
  "$build/bench/bench_gpu_summarize" --preset nano-4b ${RINGSCAN_GPU_SUMMARIZE_ARGS:-} >>"$bench_log" \
    2>>"$build/gpu-check-bench.err" || { status=1; echo "bench_gpu_summarize failed:"; tail -5 "$build/gpu-check-bench.err"; }
  # Prefill once, ask many (issue 18): a 64K-token prefix, 1, 16 and 256 questions of 200 tokens.
  "$build/bench/bench_gpu_ask" --preset nano-4b ${RINGSCAN_GPU_ASK_ARGS:-} >>"$bench_log" \
    2>>"$build/gpu-check-bench.err" || { status=1; echo "bench_gpu_ask failed:"; tail -5 "$build/gpu-check-bench.err"; }
  # Sharded decode after a GPU sequence-parallel prefill: 2 ranks sharing the GPU over MPI.
  { "$build/ringscan" make-model --preset demo --out "$build/gpu-check-demo" >/dev/null &&
    "$build/mpiexec-tests" -np 2 "$build/bench/bench_sp_gpu" --model "$build/gpu-check-demo" --tokens 16384 \
      --comm mpi --repeat 2 --generate 32 --docs 4 >>"$bench_log"; } 2>>"$build/gpu-check-bench.err" ||
    { status=1; echo "bench_sp_gpu failed:"; tail -5 "$build/gpu-check-bench.err"; }
else
  echo "gpu-check: tests failed, benchmarks not run" >"$bench_log"
fi
[[ $late_status -ne 0 ]] && status=1
# The performance model (runtime/perf_model.h) calibrated from this lease's bench_ops rates:
# one GPU at the measured lengths (compare with the prefill rows), then the planned scales.
perf_log="$build/gpu-check-perf-model.txt"
: >"$perf_log"
if grep -q '"bench": "op"' "$bench_log" 2>/dev/null; then
  for spec in "4096 1 nvlink" "32768 1 nvlink" "131072 1 nvlink" "1048576 8 nvlink" "4194304 32 ib"; do
    read -r n p link <<<"$spec"
    "$build/ringscan" info --preset nano-4b --calibration "$bench_log" --tokens "$n" --ranks "$p" --link "$link" \
      2>&1 | sed -n '/^performance model/,$p' >>"$perf_log"
  done
fi
t4=$(date +%s)

# --- one table -----------------------------------------------------------------------------
bench_table() {
  python3 - "$bench_log" <<'PY'
import json, sys
rows = []
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    b = r["bench"]
    if b == "setup":
        rows.append(("setup", f"{r['model']} on {r['gpu']}", f"weights {r['weights_gib']:.2f} GiB, arena {r['arena_gib']:.2f} GiB, {r['seconds']:.0f} s to build+upload"))
    elif b == "prefill":
        rows.append((f"prefill {r['tokens']//1024}K", f"{r['tokens_per_s']:.0f} tok/s", f"{r['tflops']:.0f} TFLOP/s, MFU {100*r['mfu']:.1f}% of {r['peak_tflops']:.0f}"))
    elif b == "ssd_scan":
        peak = "bf16" if r["kernel"].startswith("bf16") else "fp32"
        rows.append((f"ssd {r['kernel']} {r['tokens']//1024}K", f"{r['tflops']:.2f} TFLOP/s", f"{100*r['peak_fraction']:.1f}% {peak} peak, {r['seconds']*1e3:.1f} ms/layer, {r['tbs']:.2f} TB/s"))
    elif b == "attention":
        if "error" in r:
            rows.append((f"attn {r['kernel']} {r['tokens']//1024}K", "error", r["error"][:120]))
            continue
        peak = "bf16" if r["kernel"].startswith("bf16") else "fp32"
        rows.append((f"attn {r['kernel']} {r['tokens']//1024}K", f"{r['tflops']:.2f} TFLOP/s", f"{100*r['peak_fraction']:.1f}% {peak} peak, {r['seconds']*1e3:.1f} ms/layer"))
    elif b == "op":
        if "error" in r:
            rows.append((f"op {r['op'][:19]}", "error", f"{r['case'][:60]}: {r['error'][:80]}"))
            continue
        v = f"{r['tflops']:.1f} TFLOP/s" if r["bound"].endswith("peak") else f"{r['gbs']:.0f} GB/s"
        rows.append((f"op {r['op'][:19]}", v, f"{r['ms']:.3f} ms, {100*r['roofline_fraction']:.0f}% of {r['bound']}: {r['case'][:70]}"))
    elif b == "profile":
        # GPU time per op kind over the timed prefill: the 8 largest, then the rest.
        ms = sorted(r["ms"].items(), key=lambda kv: -kv[1])
        top = ", ".join(f"{k} {v:.1f}" for k, v in ms[:8])
        rest = sum(v for _, v in ms[8:])
        rows.append((f"profile {r['tokens']//1024}K", f"{r['total_ms']:.0f} ms", f"{top}, other {rest:.1f} (ms)"))
    elif b == "decode" and "error" in r:
        rows.append((f"decode batch {r['batch']}", "error", r["error"][:80]))
    elif b == "decode":
        rows.append((f"decode {r.get('mode', '')} b{r['batch']}", f"{r['tokens_per_s']:.0f} tok/s", f"{r['ms_per_step']:.2f} ms/step, prompt {r['prompt']}, {r.get('kv_cache', '')} KV"))
    elif b == "ttft":
        rows.append((f"first token {r['tokens']//1024}K", f"{1e3*r['seconds']:.0f} ms", "prefill + lm_head + draw, one document"))
    elif b == "gpu_summarize":
        how = "whole prefill" if r["prefill_chunk"] == 0 else f"chunks of {r['prefill_chunk']}" + (" overlapped" if r["overlapped"] else " between steps")
        rows.append((f"summarize {how[:12]}", f"{r['docs_per_s']:.2f} docs/s", f"{how}: {r['out_tokens_per_s']:.0f} out tok/s, stall max {r['stall_max_ms']:.0f} ms, first token mean {r['ttft_mean_s']:.2f} s ({r['docs']} docs, batch {r['batch']})"))
    elif b == "gpu_summarize_ratio":
        rows.append(("summarize overlap", f"{r['docs_per_s_vs_whole']:.2f}x docs/s", f"vs whole prefill; {r['docs_per_s_vs_serial_chunks']:.2f}x vs the same chunks between steps; stall max {r['stall_max_vs_whole']:.2f}x, first token {r['ttft_mean_vs_whole']:.2f}x"))
    elif b == "gpu_ask_prefill":
        rows.append((f"ask prefill {r['prefix']//1024}K", f"{r['tokens_per_s']:.0f} tok/s", f"{r['prefill_s']:.2f} s; re-prefill per question {r['reprefill_per_question_s']:.2f} s"))
    elif b == "gpu_ask":
        rows.append((f"ask {r['questions']} questions", f"{r['tokens_per_s']:.0f} tok/s", f"{r['ask_s']:.2f} s ({r['seconds_per_question']*1e3:.1f} ms/question) over {r['prefix']//1024}K; (prefill+ask)/(prefill+independent) {r['ask_vs_independent']:.2f} [target < 2 at 256], {r['saving_vs_reprefill']:.1f}x less than re-prefilling"))
    elif b == "memory":
        rows.append(("peak GPU memory", f"{r['peak_used_gib']:.1f} GiB", f"of {r['total_gib']:.0f} GiB"))
for name, value, note in rows:
    print(f"{name:<22} {value:>18}  {note}")
PY
}

{
  echo "gpu-check on $gpu_name x $gpus: configure $((t1 - t0)) s, build $((t2 - t1)) s, tests $((t3 - t2)) s, jobs and real scale $((t_jobs - t3)) s, bench $((t4 - t_jobs)) s, total $((t4 - t_start)) s"
  echo
  cat "$table"
  echo
  [[ -s "$bench_log" ]] && bench_table
  [[ -s "$perf_log" ]] && { echo; echo "performance model from this lease's op rates:"; grep -E '^performance model|^  total' "$perf_log"; }
} | tee "$build/gpu-check.txt"
if [[ -n "$out_dir" ]]; then
  cp "$build/gpu-check.txt" "$out_dir/gpu-check.txt"
  cp "$log" "$out_dir/gpu-check-ctest.log" 2>/dev/null || true
  cp "$bench_log" "$out_dir/gpu-check-bench.jsonl" 2>/dev/null || true
  cp "$perf_log" "$out_dir/gpu-check-perf-model.txt" 2>/dev/null || true
  cp "$build/gpu-check-deps.txt" "$build"/gpu-check-cudnn* "$build"/gpu-check-realscale-*.log "$realscale_dir/hf.json" "$out_dir/" 2>/dev/null || true
fi
rm -f "$table"
[[ $status -eq 0 ]] && echo "gpu-check: all checks passed" || echo "gpu-check: FAILED (see the table above)" >&2
exit $status
