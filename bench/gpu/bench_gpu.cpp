// GPU engine benchmarks on one device, one JSON line per measurement:
//   bench_gpu [--model DIR | --preset nano-4b] [--lengths 4096,32768,131072]
//             [--decode-batches 1,8,64,256] [--decode-prompt 512] [--decode-steps 32]
//             [--ttft-lengths 4096,32768]
//             [--peak-tflops 989] [--fp32-peak-tflops 67] [--bandwidth-tbs 4.8]
// --preset builds the random checkpoint of that preset in host memory (no
// 8 GB file to write on a short lease) and uploads it.
//   prefill  tokens/s of the scoring path (forward + lm_head + log-probs of
//            every next token) and model FLOPs utilisation (bench/prefill/
//            model/model_flops.h) against --peak-tflops (H200 SXM dense bf16: 989)
//   ssd      the SSD scan alone at the model's shapes, "kernel": "bf16_mma"
//            (ssd_scan_bf16, what the engine runs) against the bf16 peak, and
//            "fp32_simt" (ssd_scan, the reference) against the fp32 peak; bytes/s
//            against HBM
//   attention one causal fold over L keys: "bf16_mma" (attention_block_mma,
//            bf16 and fp32 inputs) against the bf16 peak, "fp32_simt"
//            (attention_block) against the fp32 peak
//   The fp32 SIMT references run only up to 32K tokens (seconds each at 128K).
//   profile  GPU milliseconds per op kind over each timed prefill (CUDA events)
//   (every op alone at the model's shapes: bench_ops --backend cuda, the op
//   tests' perf mode, bench/ops)
//   ttft     time to first token of one document (prefill + lm_head + draw)
//   decode   tokens/s of batched greedy decode (decode_and_sample: the step
//            replayed as a CUDA graph, "graph", and queued op by op, "eager")
//   memory   the process's peak GPU memory
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "bench_gpu_model.h"
#include "bench_util.h"
#include "kernels/activations.h"
#include "kernels/attention.h"
#include "kernels/causal_conv1d.h"
#include "kernels/elementwise.h"
#include "kernels/gated_rmsnorm.h"
#include "kernels/linear.h"
#include "kernels/log_softmax.h"
#include "kernels/rmsnorm.h"
#include "kernels/sampling.h"
#include "kernels/ssd_scan.h"
#include "kernels/weight_view.h"
#include "model/device_model.h"
#include "model/device_profiler.h"
#include "model/model.h"
#include "model/model_flops.h"
#include "runtime/decode_engine.h"

using namespace ringscan;

using bench::now;
using bench::parse_list;

namespace {

void device_sync() {
  const cudaError_t e = cudaDeviceSynchronize();
  if (e != cudaSuccess) {
    std::fprintf(stderr, "bench_gpu: CUDA error: %s\n", cudaGetErrorString(e));
    std::exit(1);
  }
}

// n values in [-a, a], a fixed pattern (timing only); positive: |a sin| + 1e-4
// (time steps must be > 0, as softplus makes them).
std::vector<float> pattern(int64_t n, float a, bool positive = false) {
  std::vector<float> h(n);
  for (int64_t i = 0; i < n; ++i) {
    const float v = a * static_cast<float>(std::sin(0.37 * static_cast<double>(i)));
    h[i] = positive ? std::fabs(v) + 1e-4f : v;
  }
  return h;
}

// A device copy of `bytes` host bytes (null: uninitialised); out of memory ends the run.
void* device_copy(const void* h, size_t bytes) {
  void* d = nullptr;
  if (cudaMalloc(&d, std::max<size_t>(bytes, 1)) != cudaSuccess) {
    std::fprintf(stderr, "bench_gpu: out of GPU memory for %zu bytes\n", bytes);
    std::exit(1);
  }
  if (h) cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice);
  return d;
}

// The pattern on the device, as fp32 or as bf16 (weights, bf16 activations).
float* device_floats(int64_t n, float a, bool positive = false) {
  const std::vector<float> h = pattern(n, a, positive);
  return static_cast<float*>(device_copy(h.data(), n * sizeof(float)));
}
void* device_bf16(int64_t n, float a) {
  const std::vector<float> h = pattern(n, a);
  std::vector<uint16_t> b(n);
  for (int64_t i = 0; i < n; ++i) b[i] = f32_to_bf16(h[i]);
  return device_copy(b.data(), n * 2);
}

// Seconds per call of f over `reps` calls, after one warm-up call (warm_up).
double seconds_per_call(const std::function<void()>& f, int reps, bool warm_up = true) {
  if (warm_up) f();
  device_sync();
  const double t0 = now();
  for (int r = 0; r < reps; ++r) f();
  device_sync();
  return (now() - t0) / reps;
}

struct Peaks {
  double bf16_tflops = 989, fp32_tflops = 67, tbs = 4.8;
};

// One JSON line: GPU milliseconds per op kind over a whole prefill, most first.
void print_profile(int64_t L, const std::map<std::string, double>& ms) {
  std::vector<std::pair<double, std::string>> rows;
  double total = 0;
  for (const auto& [k, v] : ms) rows.emplace_back(v, k), total += v;
  std::sort(rows.rbegin(), rows.rend());
  std::printf("{\"bench\": \"profile\", \"tokens\": %lld, \"total_ms\": %.2f, \"ms\": {", static_cast<long long>(L),
              total);
  for (size_t i = 0; i < rows.size(); ++i)
    std::printf("%s\"%s\": %.2f", i ? ", " : "", rows[i].second.c_str(), rows[i].first);
  std::printf("}}\n");
  std::fflush(stdout);
}

void bench_prefill(DeviceModel& dev, int64_t L, const Peaks& pk) {
  const ModelConfig& c = dev.config();
  const std::vector<int32_t> ids = bench::synthetic_ids(L, c.vocab_size, 1);
  std::vector<float> lp(L);
  auto run = [&]() {
    DeviceSequence seq = dev.new_sequence(L);
    dev.forward(ids.data(), L, seq, [&](int64_t row0, int64_t rows, const float* d_hidden) {
      const int64_t with_target = std::min(rows, L - 1 - row0);
      if (with_target > 0) dev.target_logprobs(d_hidden, with_target, ids.data() + row0 + 1, lp.data() + row0);
    });
    device_sync();
  };
  if (L <= 8192) run();  // warm-up (cuBLAS heuristics, scratch growth); long runs warm themselves
  // The timed run is also profiled: one event per op on the stream, read
  // after the run (creating the events costs microseconds each, once).
  DeviceProfiler prof;
  dev.set_profiler(&prof);
  const double t0 = now();
  run();
  const double s = now() - t0;
  dev.set_profiler(nullptr);
  print_profile(L, prof.report());
  const double flops = prefill_flops(c, L);
  std::printf("{\"bench\": \"prefill\", \"tokens\": %lld, \"seconds\": %.3f, \"tokens_per_s\": %.1f, "
              "\"tflops\": %.1f, \"mfu\": %.3f, \"peak_tflops\": %.0f}\n",
              static_cast<long long>(L), s, L / s, flops / s / 1e12, flops / s / 1e12 / pk.bf16_tflops,
              pk.bf16_tflops);
  std::fflush(stdout);
}

void bench_ssd(const ModelConfig& c, int64_t L, const Peaks& pk, bool mma) {
  const kernels::SsdShape s{L, c.mamba_heads, c.mamba_head_dim, c.n_groups, c.ssm_state, c.chunk_size};
  const int64_t di = c.d_inner(), GN = c.n_groups * c.ssm_state, H = c.mamba_heads;
  float *x = device_floats(L * di, 1.f), *dt = device_floats(L * H, 0.01f, true), *B = device_floats(L * GN, 1.f),
        *C = device_floats(L * GN, 1.f), *y = device_floats(L * di, 0.f), *A = device_floats(H, 1.f),
        *fin = device_floats(H * c.mamba_head_dim * c.ssm_state, 0.f);
  std::vector<float> a(H, -1.f);  // negative decays
  cudaMemcpy(A, a.data(), H * sizeof(float), cudaMemcpyHostToDevice);
  const auto scan = mma ? kernels::cuda::ssd_scan_bf16 : kernels::cuda::ssd_scan;
  // Scratch as the engine gives it: caller workspace (one pass up to 256 MiB).
  const size_t ws_bytes = kernels::cuda::ssd_scan_workspace(s);
  void* ws = device_copy(nullptr, ws_bytes);
  const double sec = seconds_per_call(
      [&] { scan(s, x, di, dt, A, B, GN, C, GN, nullptr, y, di, fin, kernels::Workspace{ws, ws_bytes}, nullptr); }, 5);
  const double Q = std::min<int64_t>(c.chunk_size, L);
  const double flops = L * (2.0 * c.n_groups * c.ssm_state * Q / 2 + 2.0 * di * Q / 2 + 4.0 * di * c.ssm_state);
  const double bytes = 4.0 * L * (2 * di + 2 * GN + H);
  const double peak = mma ? pk.bf16_tflops : pk.fp32_tflops;
  std::printf("{\"bench\": \"ssd_scan\", \"kernel\": \"%s\", \"tokens\": %lld, \"seconds\": %.5f, "
              "\"tflops\": %.2f, \"peak_fraction\": %.3f, \"tbs\": %.3f, \"bandwidth_fraction\": %.3f}\n",
              mma ? "bf16_mma" : "fp32_simt", static_cast<long long>(L), sec, flops / sec / 1e12,
              flops / sec / 1e12 / peak, bytes / sec / 1e12, bytes / sec / 1e12 / pk.tbs);
  std::fflush(stdout);
  for (float* p : {x, dt, B, C, y, A, fin}) cudaFree(p);
  cudaFree(ws);
}

// kernel: "fp32_simt" (attention_block), "bf16_mma" (attention_block_mma on
// bf16 q/k/v, 4 warps per CTA), "bf16_mma_8warps" (the same with 8: the
// caller sets it) or "bf16_mma_f32in" (fp32 q/k/v, rounded while staged: what
// the engine does while its activations are fp32).
void bench_attention(const ModelConfig& c, int64_t L, const Peaks& pk, const std::string& kernel) {
  const kernels::AttentionShape s{c.num_heads, c.num_kv_heads, c.head_dim};
  const int64_t qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim;
  float *q = device_floats(L * qd, 0.5f), *k = device_floats(L * kvd, 0.5f), *v = device_floats(L * kvd, 1.f),
        *acc = device_floats(L * qd, 0.f), *m = device_floats(L * c.num_heads, 0.f),
        *l = device_floats(L * c.num_heads, 0.f);
  const bool mma = kernel != "fp32_simt", bf16_in = kernel == "bf16_mma" || kernel == "bf16_mma_8warps";
  void *qb = bf16_in ? device_bf16(L * qd, 0.5f) : q, *kb = bf16_in ? device_bf16(L * kvd, 0.5f) : k,
       *vb = bf16_in ? device_bf16(L * kvd, 1.f) : v;
  const float scale = 1.f / std::sqrt(static_cast<float>(c.head_dim));
  const double sec = seconds_per_call(
      [&] {
        kernels::cuda::attention_init(s, L, acc, m, l);
        if (mma)
          kernels::cuda::attention_block_mma(s, bf16_in ? DType::BF16 : DType::F32, qb, qd, L, 0, kb, kvd, vb, kvd, L,
                                             0, scale, true, acc, m, l, kernels::Workspace{}, nullptr);
        else
          kernels::cuda::attention_block(s, q, qd, L, 0, k, kvd, v, kvd, L, 0, scale, true, acc, m, l);
      },
      1);
  const double flops = 4.0 * c.num_heads * c.head_dim * static_cast<double>(L) * (L + 1) / 2;
  const double peak = mma ? pk.bf16_tflops : pk.fp32_tflops;
  std::printf("{\"bench\": \"attention\", \"kernel\": \"%s\", \"tokens\": %lld, \"seconds\": %.4f, "
              "\"tflops\": %.2f, \"peak_fraction\": %.3f}\n",
              kernel.c_str(), static_cast<long long>(L), sec, flops / sec / 1e12, flops / sec / 1e12 / peak);
  std::fflush(stdout);
  if (bf16_in)
    for (void* p : {qb, kb, vb}) cudaFree(p);
  for (float* p : {q, k, v, acc, m, l}) cudaFree(p);
}

#ifdef RINGSCAN_WITH_CUDNN
// kernel "bf16_cudnn": cuDNN's fused attention on bf16 q/k/v, one causal (top_left) attention over L
// tokens (the same work as bench_attention's fold), against the bf16 peak; plan built before timing;
// a cuDNN refusal prints an "error" line and the other benchmarks go on.
void bench_attention_cudnn(const ModelConfig& c, int64_t L, const Peaks& pk) {
  namespace kc = kernels::cuda;
  kc::CudnnAttention a;
  a.s = {c.num_heads, c.num_kv_heads, c.head_dim};
  a.lq = a.lk = L;
  a.mask = kc::CudnnMask::top_left;
  a.scale = 1.f / std::sqrt(static_cast<float>(c.head_dim));
  auto error_line = [&](const std::string& what) {
    std::string msg = what;
    for (char& ch : msg)
      if (ch == '"' || ch == '\\' || ch == '\n' || ch == '\t') ch = ' ';
    std::printf("{\"bench\": \"attention\", \"kernel\": \"bf16_cudnn\", \"tokens\": %lld, \"error\": \"%s\"}\n",
                static_cast<long long>(L), msg.c_str());
    std::fflush(stdout);
  };
  size_t ws_bytes = 0;
  try {
    ws_bytes = kc::attention_cudnn_workspace(a);
  } catch (const std::exception& e) {
    error_line(e.what());
    return;
  }
  const int64_t qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim;
  void *q = device_bf16(L * qd, 0.5f), *k = device_bf16(L * kvd, 0.5f), *v = device_bf16(L * kvd, 1.f),
       *out = device_copy(nullptr, L * qd * 2), *lse = device_copy(nullptr, L * c.num_heads * 4),
       *ws = ws_bytes ? device_copy(nullptr, ws_bytes) : nullptr;
  try {
    const double sec = seconds_per_call(
        [&] {
          kc::attention_cudnn_fwd(a, q, k, v, out, static_cast<float*>(lse), kernels::Workspace{ws, ws_bytes}, nullptr);
        },
        L <= 32768 ? 5 : 1);
    const double flops = 4.0 * c.num_heads * c.head_dim * static_cast<double>(L) * (L + 1) / 2;
    std::printf("{\"bench\": \"attention\", \"kernel\": \"bf16_cudnn\", \"tokens\": %lld, \"seconds\": %.4f, "
                "\"tflops\": %.2f, \"peak_fraction\": %.3f, \"workspace_bytes\": %zu, \"cudnn_version\": %lld}\n",
                static_cast<long long>(L), sec, flops / sec / 1e12, flops / sec / 1e12 / pk.bf16_tflops, ws_bytes,
                static_cast<long long>(kc::attention_cudnn_version()));
    std::fflush(stdout);
  } catch (const std::exception& e) {
    error_line(e.what());
  }
  for (void* p : {q, k, v, out, lse, ws}) cudaFree(p);
}
#endif

// Batched greedy decode as the engine runs it (decode_and_sample: every layer,
// lm_head, the draw and the ids back), with the step replayed as a CUDA graph
// ("graph") or queued op by op ("eager"); batches of B sequences after a
// prompt of `prompt` tokens each.
void bench_decode(DeviceModel& dev, int64_t B, int64_t prompt, int64_t steps) {
  const ModelConfig& c = dev.config();
  if (B > dev.block_tokens()) {
    std::printf("{\"bench\": \"decode\", \"batch\": %lld, \"error\": \"above the engine's largest batch %lld\"}\n",
                static_cast<long long>(B), static_cast<long long>(dev.block_tokens()));
    return;
  }
  std::vector<DeviceSequence> seqs;
  std::vector<DeviceSequence*> ptrs;
  seqs.reserve(B);
  for (int64_t b = 0; b < B; ++b) {
    seqs.push_back(dev.new_sequence(prompt + 2 * (steps + 1) + 1));
    const std::vector<int32_t> ids = bench::synthetic_ids(prompt, c.vocab_size, b + 7);
    dev.forward(ids.data(), prompt, seqs.back(), nullptr);
  }
  for (auto& s : seqs) ptrs.push_back(&s);
  std::vector<int32_t> tokens(B, 1);
  std::vector<kernels::SamplingParams> params(B);  // greedy
  std::vector<uint64_t> stream(B), step(B, 0);
  for (int64_t b = 0; b < B; ++b) stream[b] = static_cast<uint64_t>(b);
  for (bool graphs : {true, false}) {
    dev.set_decode_graphs(graphs);
    auto one_step = [&]() {
      dev.decode_and_sample(tokens.data(), B, ptrs.data(), params.data(), stream.data(), step.data(), tokens.data());
      for (auto& s : step) ++s;
    };
    one_step();  // the graph's capture, cuBLAS's first calls
    device_sync();
    const double t0 = now();
    for (int64_t t = 0; t < steps; ++t) one_step();
    device_sync();
    const double sec = now() - t0;
    std::printf("{\"bench\": \"decode\", \"mode\": \"%s\", \"batch\": %lld, \"prompt\": %lld, \"steps\": %lld, "
                "\"seconds\": %.3f, \"tokens_per_s\": %.1f, \"ms_per_step\": %.3f, \"kv_cache\": \"%s\"}\n",
                graphs ? "graph" : "eager", static_cast<long long>(B), static_cast<long long>(prompt),
                static_cast<long long>(steps), sec, B * steps / sec, 1e3 * sec / steps, dtype_name(dev.kv_cache_dtype()));
    std::fflush(stdout);
  }
  dev.set_decode_graphs(true);
}

// Time to first token of one document of L tokens through the decode engine
// (prefill, lm_head of the last row, the draw): what a summarize request waits.
void bench_ttft(DeviceModel& dev, int64_t L) {
  auto engine = make_device_decode_engine(dev);
  const std::vector<int32_t> ids = bench::synthetic_ids(L, dev.config().vocab_size, 99);
  const kernels::SamplingParams greedy;
  {  // warm-up at a short length (cuBLAS handles, first launches)
    auto s = engine->prefill(std::vector<int32_t>(ids.begin(), ids.begin() + std::min<int64_t>(L, 64)));
    engine->first_token(*s, greedy, 0, 0);
  }
  device_sync();
  const double t0 = now();
  auto s = engine->prefill(ids);
  const int32_t tok = engine->first_token(*s, greedy, 0, 0);
  device_sync();
  const double sec = now() - t0;
  std::printf("{\"bench\": \"ttft\", \"tokens\": %lld, \"seconds\": %.4f, \"first_token\": %d}\n",
              static_cast<long long>(L), sec, tok);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir, preset = "nano-4b";
  std::vector<int64_t> lengths = {4096, 32768, 131072}, batches = {1, 8, 64, 256}, ttft = {4096, 32768};
  int64_t prompt = 512, steps = 32;
  Peaks pk;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) { std::fprintf(stderr, "bench_gpu: %s needs a value\n", a.c_str()); std::exit(2); }
      return argv[++i];
    };
    if (a == "--model") dir = next();
    else if (a == "--preset") preset = next();
    else if (a == "--lengths") lengths = parse_list(next());
    else if (a == "--decode-batches") batches = parse_list(next());
    else if (a == "--decode-prompt") prompt = std::atoll(next().c_str());
    else if (a == "--decode-steps") steps = std::atoll(next().c_str());
    else if (a == "--ttft-lengths") ttft = parse_list(next());
    else if (a == "--peak-tflops") pk.bf16_tflops = std::atof(next().c_str());
    else if (a == "--fp32-peak-tflops") pk.fp32_tflops = std::atof(next().c_str());
    else if (a == "--bandwidth-tbs") pk.tbs = std::atof(next().c_str());
    else { std::fprintf(stderr, "bench_gpu: unknown option %s\n", a.c_str()); return 2; }
  }
  const std::string gpu = bench::gpu_name_or_exit("bench_gpu");
  const double t_load = now();
  const std::unique_ptr<Model> model = bench::checkpoint_or_preset(dir, preset);
  DeviceModel dev(*model, DeviceModelOptions{});
  device_sync();
  std::printf("{\"bench\": \"setup\", \"gpu\": \"%s\", \"model\": \"%s\", \"weights_gib\": %.2f, "
              "\"arena_gib\": %.2f, \"seconds\": %.1f}\n",
              gpu.c_str(), dir.empty() ? preset.c_str() : dir.c_str(), dev.weight_bytes() / double(1 << 30),
              dev.arena_bytes() / double(1 << 30), now() - t_load);
  std::fflush(stdout);
  for (int64_t L : lengths) bench_prefill(dev, L, pk);
  constexpr int64_t kSimtMaxTokens = 32768;  // the fp32 references take seconds per call beyond
  for (int64_t L : lengths) {
    bench_ssd(model->config(), L, pk, /*mma=*/true);
    if (L <= kSimtMaxTokens) bench_ssd(model->config(), L, pk, /*mma=*/false);
  }
  for (int64_t L : lengths) {
    bench_attention(model->config(), L, pk, "bf16_mma");
#ifdef RINGSCAN_WITH_CUDNN
    bench_attention_cudnn(model->config(), L, pk);
#endif
    kernels::cuda::set_attention_mma_warps(8);  // the tuning alternative: 128 query rows per CTA
    bench_attention(model->config(), L, pk, "bf16_mma_8warps");
    kernels::cuda::set_attention_mma_warps(4);
    bench_attention(model->config(), L, pk, "bf16_mma_f32in");
    if (L <= kSimtMaxTokens) bench_attention(model->config(), L, pk, "fp32_simt");
  }
  for (int64_t L : ttft) bench_ttft(dev, L);
  for (int64_t B : batches) bench_decode(dev, B, prompt, steps);
  const DeviceMemory m = device_memory();
  std::printf("{\"bench\": \"memory\", \"peak_used_gib\": %.2f, \"total_gib\": %.2f}\n",
              m.peak_used_bytes / double(1ull << 30), m.total_bytes / double(1ull << 30));
  return 0;
}
