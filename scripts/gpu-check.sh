#!/usr/bin/env bash
# The GPU check for a short lease (one H200, meant to finish in under 8
# minutes including the build): builds the CUDA engine for sm_90, runs every
# GPU test, then the GPU benchmarks, and prints one table. The table (and the
# raw logs) also go to $OUT when it is set.
#
#   scripts/gpu-check.sh [build-dir]          (default: build-gpu)
#
# Tests: test_kernels_cuda (every CUDA op against its plain-loop reference),
# test_device_model (whole model against HF's logits and the CPU engine,
# greedy generation against HF generate, batched decode), device_sp_np1/np2
# (GPU sequence parallel = GPU single rank, two ranks sharing the GPU over
# MPI), comm_nccl_np1/np2 (the NCCL communicator; np2 needs 2 GPUs); then the
# jobs end to end: `score` of docs/ on the GPU against the CPU (perplexities
# within 2%) and `summarize` on the GPU.
# Benchmarks: bench_gpu on the nano-4b random checkpoint built in memory:
# prefill (score path) tokens/s and MFU at 4K/32K/128K tokens, SSD scan and
# attention kernel throughput against the fp32 peak, decode tokens/s at batch
# 1 and 64, peak GPU memory.
#
# Honest by design: no visible GPU is an error (exit 2); a GPU test that skips
# itself although a GPU is visible counts as a failure (only comm_nccl_np2 may
# skip, with fewer than 2 GPUs).
#
# Needs the build dependencies of scripts/setup.sh. A machine without them and
# without a package registry (the lent GPU machines) can take them from
# .gpu-deps/, which scripts/gpu-deps.sh fetches on a machine with one: name
# .gpu-deps in the device run's carry list.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-gpu}
t_start=$(date +%s)
out_dir=${OUT:-}
die() {
  echo "gpu-check: FAILED: $*" >&2
  [[ -n "$out_dir" ]] && echo "gpu-check: FAILED: $*" >"$out_dir/gpu-check.txt"
  exit 2
}

# --- a GPU must be there ---------------------------------------------------------
command -v nvidia-smi >/dev/null || die "nvidia-smi not found: this machine has no NVIDIA driver, so no GPU to check"
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
[[ "$gpus" -ge 1 ]] || die "nvidia-smi lists no GPU"
gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

# --- dependencies --------------------------------------------------------------------
if ! command -v mpicxx >/dev/null && [[ -d .gpu-deps ]]; then
  # shellcheck source=scripts/gpu-deps.sh
  source scripts/gpu-deps.sh activate || die "could not unpack .gpu-deps"
fi
command -v mpicxx >/dev/null || die "no MPI compiler (mpicxx): install scripts/setup.sh's packages, or carry .gpu-deps (scripts/gpu-deps.sh)"

# --- configure and build what is checked ---------------------------------------------
jobs=$(nproc)
t0=$(date +%s)
mkdir -p "$build"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DRINGSCAN_WITH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DRINGSCAN_BUILD_BENCH=ON -DRINGSCAN_BUILD_TESTS=ON ${RINGSCAN_GPU_CMAKE_ARGS:-} \
  >"$build/gpu-check-configure.log" 2>&1 || { tail -30 "$build/gpu-check-configure.log"; die "configure failed (log: $build/gpu-check-configure.log)"; }
t1=$(date +%s)
cmake --build "$build" -j"$jobs" --target test_kernels_cuda test_device_model test_device_sp test_comm_nccl bench_gpu ringscan \
  >"$build/gpu-check-build.log" 2>&1 || { grep -E "error|Error" "$build/gpu-check-build.log" | head -30; die "build failed (log: $build/gpu-check-build.log)"; }
t2=$(date +%s)
echo "gpu-check: configure $((t1 - t0)) s, build $((t2 - t1)) s"

# --- tests -----------------------------------------------------------------------------
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tests=(test_kernels_cuda test_device_model device_sp_np1 device_sp_np2 comm_nccl_np1 comm_nccl_np2)
regex="^($(IFS='|'; echo "${tests[*]}"))\$"
log="$build/gpu-check-ctest.log"
ctest --test-dir "$build" -R "$regex" --output-on-failure --timeout 240 >"$log" 2>&1
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

# --- benchmarks (after the tests: numbers from a failing engine mean nothing) ----------
bench_log="$build/gpu-check-bench.jsonl"
if [[ $status -eq 0 ]]; then
  "$build/bench/bench_gpu" --preset nano-4b ${RINGSCAN_GPU_BENCH_ARGS:-} >"$bench_log" 2>"$build/gpu-check-bench.err" \
    || { status=1; echo "bench_gpu failed:"; tail -5 "$build/gpu-check-bench.err"; }
else
  echo "gpu-check: tests failed, benchmarks not run" >"$bench_log"
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
        rows.append((f"ssd_scan {r['tokens']//1024}K", f"{r['tflops']:.2f} TFLOP/s", f"{100*r['fp32_peak_fraction']:.1f}% fp32 peak, {r['tbs']:.2f} TB/s ({100*r['bandwidth_fraction']:.1f}% HBM)"))
    elif b == "attention":
        rows.append((f"attention {r['tokens']//1024}K", f"{r['tflops']:.2f} TFLOP/s", f"{100*r['fp32_peak_fraction']:.1f}% fp32 peak, {r['seconds']*1e3:.1f} ms"))
    elif b == "decode":
        rows.append((f"decode batch {r['batch']}", f"{r['tokens_per_s']:.0f} tok/s", f"{r['ms_per_step']:.2f} ms/step, prompt {r['prompt']}"))
    elif b == "memory":
        rows.append(("peak GPU memory", f"{r['peak_used_gib']:.1f} GiB", f"of {r['total_gib']:.0f} GiB"))
for name, value, note in rows:
    print(f"{name:<22} {value:>18}  {note}")
PY
}

{
  echo "gpu-check on $gpu_name x $gpus: configure $((t1 - t0)) s, build $((t2 - t1)) s, tests $((t3 - t2)) s, bench $((t4 - t3)) s, total $((t4 - t_start)) s"
  echo
  cat "$table"
  echo
  [[ -s "$bench_log" ]] && bench_table
} | tee "$build/gpu-check.txt"
if [[ -n "$out_dir" ]]; then
  cp "$build/gpu-check.txt" "$out_dir/gpu-check.txt"
  cp "$log" "$out_dir/gpu-check-ctest.log" 2>/dev/null || true
  cp "$bench_log" "$out_dir/gpu-check-bench.jsonl" 2>/dev/null || true
fi
rm -f "$table"
[[ $status -eq 0 ]] && echo "gpu-check: all checks passed" || echo "gpu-check: FAILED (see the table above)" >&2
exit $status
