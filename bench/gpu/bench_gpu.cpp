// GPU engine benchmarks on one device, one JSON line per measurement:
//   bench_gpu [--model DIR | --preset nano-4b] [--lengths 4096,32768,131072]
//             [--decode-batches 1,64] [--decode-prompt 512] [--decode-steps 32]
//             [--peak-tflops 989] [--fp32-peak-tflops 67] [--bandwidth-tbs 4.8]
// --preset builds the random checkpoint of that preset in host memory (no
// 8 GB file to write on a short lease) and uploads it.
//   prefill  tokens/s of the scoring path (forward + lm_head + log-probs of
//            every next token) and model FLOPs utilisation (bench/prefill/
//            model_flops.h) against --peak-tflops (H200 SXM dense bf16: 989)
//   ssd      the SSD scan kernel alone at the model's shapes: FLOP/s against
//            the fp32 peak (the kernel is fp32 SIMT) and bytes/s against HBM
//   attention one causal attention_block over L keys: FLOP/s against fp32 peak
//   decode   tokens/s of batched greedy decode (decode_step + lm_head + draw)
//   memory   the process's peak GPU memory
#include <cuda_runtime.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "bench_util.h"
#include "kernels/attention.h"
#include "kernels/sampling.h"
#include "kernels/ssd_scan.h"
#include "model/device_model.h"
#include "model/model.h"
#include "model/presets.h"
#include "model/random_checkpoint.h"
#include "model_flops.h"

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

// Device buffer of n floats, uniform in [-a, a] (a fixed pattern: timing only).
// positive: |a sin| (time steps must be > 0, as softplus makes them).
float* device_floats(int64_t n, float a, bool positive = false) {
  std::vector<float> h(n);
  for (int64_t i = 0; i < n; ++i) {
    const float v = a * static_cast<float>(std::sin(0.37 * static_cast<double>(i)));
    h[i] = positive ? std::fabs(v) + 1e-4f : v;
  }
  float* d = nullptr;
  if (cudaMalloc(&d, n * sizeof(float)) != cudaSuccess) {
    std::fprintf(stderr, "bench_gpu: out of GPU memory for %lld floats\n", static_cast<long long>(n));
    std::exit(1);
  }
  cudaMemcpy(d, h.data(), n * sizeof(float), cudaMemcpyHostToDevice);
  return d;
}

struct Peaks {
  double bf16_tflops = 989, fp32_tflops = 67, tbs = 4.8;
};

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
  const double t0 = now();
  run();
  const double s = now() - t0;
  const double flops = prefill_flops(c, L);
  std::printf("{\"bench\": \"prefill\", \"tokens\": %lld, \"seconds\": %.3f, \"tokens_per_s\": %.1f, "
              "\"tflops\": %.1f, \"mfu\": %.3f, \"peak_tflops\": %.0f}\n",
              static_cast<long long>(L), s, L / s, flops / s / 1e12, flops / s / 1e12 / pk.bf16_tflops,
              pk.bf16_tflops);
  std::fflush(stdout);
}

void bench_ssd(const ModelConfig& c, int64_t L, const Peaks& pk) {
  const kernels::SsdShape s{L, c.mamba_heads, c.mamba_head_dim, c.n_groups, c.ssm_state, c.chunk_size};
  const int64_t di = c.d_inner(), GN = c.n_groups * c.ssm_state, H = c.mamba_heads;
  float *x = device_floats(L * di, 1.f), *dt = device_floats(L * H, 0.01f, true), *B = device_floats(L * GN, 1.f),
        *C = device_floats(L * GN, 1.f), *y = device_floats(L * di, 0.f), *A = device_floats(H, 1.f),
        *fin = device_floats(H * c.mamba_head_dim * c.ssm_state, 0.f);
  std::vector<float> a(H, -1.f);  // negative decays
  cudaMemcpy(A, a.data(), H * sizeof(float), cudaMemcpyHostToDevice);
  auto once = [&]() { kernels::cuda::ssd_scan(s, x, di, dt, A, B, GN, C, GN, nullptr, y, di, fin); };
  once();
  device_sync();
  const int reps = 5;
  const double t0 = now();
  for (int r = 0; r < reps; ++r) once();
  device_sync();
  const double sec = (now() - t0) / reps;
  const double Q = std::min<int64_t>(c.chunk_size, L);
  const double flops = L * (2.0 * c.n_groups * c.ssm_state * Q / 2 + 2.0 * di * Q / 2 + 4.0 * di * c.ssm_state);
  const double bytes = 4.0 * L * (2 * di + 2 * GN + H);
  std::printf("{\"bench\": \"ssd_scan\", \"tokens\": %lld, \"seconds\": %.5f, \"tflops\": %.2f, "
              "\"fp32_peak_fraction\": %.3f, \"tbs\": %.3f, \"bandwidth_fraction\": %.3f}\n",
              static_cast<long long>(L), sec, flops / sec / 1e12, flops / sec / 1e12 / pk.fp32_tflops,
              bytes / sec / 1e12, bytes / sec / 1e12 / pk.tbs);
  std::fflush(stdout);
  for (float* p : {x, dt, B, C, y, A, fin}) cudaFree(p);
}

void bench_attention(const ModelConfig& c, int64_t L, const Peaks& pk) {
  const kernels::AttentionShape s{c.num_heads, c.num_kv_heads, c.head_dim};
  const int64_t qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim;
  float *q = device_floats(L * qd, 0.5f), *k = device_floats(L * kvd, 0.5f), *v = device_floats(L * kvd, 1.f),
        *acc = device_floats(L * qd, 0.f), *m = device_floats(L * c.num_heads, 0.f),
        *l = device_floats(L * c.num_heads, 0.f);
  const float scale = 1.f / std::sqrt(static_cast<float>(c.head_dim));
  auto once = [&]() {
    kernels::cuda::attention_init(s, L, acc, m, l);
    kernels::cuda::attention_block(s, q, qd, L, 0, k, kvd, v, kvd, L, 0, scale, true, acc, m, l);
  };
  once();
  device_sync();
  const double t0 = now();
  once();
  device_sync();
  const double sec = now() - t0;
  const double flops = 4.0 * c.num_heads * c.head_dim * static_cast<double>(L) * (L + 1) / 2;
  std::printf("{\"bench\": \"attention\", \"tokens\": %lld, \"seconds\": %.4f, \"tflops\": %.2f, "
              "\"fp32_peak_fraction\": %.3f}\n",
              static_cast<long long>(L), sec, flops / sec / 1e12, flops / sec / 1e12 / pk.fp32_tflops);
  std::fflush(stdout);
  for (float* p : {q, k, v, acc, m, l}) cudaFree(p);
}

void bench_decode(DeviceModel& dev, int64_t B, int64_t prompt, int64_t steps) {
  const ModelConfig& c = dev.config();
  std::vector<DeviceSequence> seqs;
  std::vector<DeviceSequence*> ptrs;
  seqs.reserve(B);
  for (int64_t b = 0; b < B; ++b) {
    seqs.push_back(dev.new_sequence(prompt + steps + 1));
    const std::vector<int32_t> ids = bench::synthetic_ids(prompt, c.vocab_size, b + 7);
    dev.forward(ids.data(), prompt, seqs.back(), nullptr);
  }
  for (auto& s : seqs) ptrs.push_back(&s);
  std::vector<int32_t> tokens(B, 1);
  std::vector<kernels::SamplingParams> params(B);  // greedy
  std::vector<uint64_t> stream(B), step(B, 0);
  for (int64_t b = 0; b < B; ++b) stream[b] = static_cast<uint64_t>(b);
  auto one_step = [&]() {
    const float* h = dev.decode_step(tokens.data(), B, ptrs.data());
    dev.sample(h, B, params.data(), stream.data(), step.data(), tokens.data());
    for (auto& s : step) ++s;
  };
  one_step();
  device_sync();
  const double t0 = now();
  for (int64_t t = 0; t < steps; ++t) one_step();
  device_sync();
  const double sec = now() - t0;
  std::printf("{\"bench\": \"decode\", \"batch\": %lld, \"prompt\": %lld, \"steps\": %lld, \"seconds\": %.3f, "
              "\"tokens_per_s\": %.1f, \"ms_per_step\": %.2f}\n",
              static_cast<long long>(B), static_cast<long long>(prompt), static_cast<long long>(steps), sec,
              B * steps / sec, 1e3 * sec / steps);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir, preset = "nano-4b";
  std::vector<int64_t> lengths = {4096, 32768, 131072}, batches = {1, 64};
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
    else if (a == "--peak-tflops") pk.bf16_tflops = std::atof(next().c_str());
    else if (a == "--fp32-peak-tflops") pk.fp32_tflops = std::atof(next().c_str());
    else if (a == "--bandwidth-tbs") pk.tbs = std::atof(next().c_str());
    else { std::fprintf(stderr, "bench_gpu: unknown option %s\n", a.c_str()); return 2; }
  }
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::fprintf(stderr, "bench_gpu: no GPU: nothing to measure\n");
    return 2;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  const double t_load = now();
  std::unique_ptr<Model> model;
  if (!dir.empty()) {
    model = Model::load(dir, true);
  } else {
    const ModelConfig c = preset_config(preset);
    model = Model::from_checkpoint(c, random_checkpoint_in_memory(c, RandomCheckpointOptions{}));
  }
  DeviceModel dev(*model, DeviceModelOptions{});
  device_sync();
  std::printf("{\"bench\": \"setup\", \"gpu\": \"%s\", \"model\": \"%s\", \"weights_gib\": %.2f, "
              "\"arena_gib\": %.2f, \"seconds\": %.1f}\n",
              prop.name, dir.empty() ? preset.c_str() : dir.c_str(), dev.weight_bytes() / double(1 << 30),
              dev.arena_bytes() / double(1 << 30), now() - t_load);
  std::fflush(stdout);
  for (int64_t L : lengths) bench_prefill(dev, L, pk);
  for (int64_t L : lengths) bench_ssd(model->config(), L, pk);
  for (int64_t L : lengths) bench_attention(model->config(), L, pk);
  for (int64_t B : batches) bench_decode(dev, B, prompt, steps);
  const DeviceMemory m = device_memory();
  std::printf("{\"bench\": \"memory\", \"peak_used_gib\": %.2f, \"total_gib\": %.2f}\n",
              m.peak_used_bytes / double(1ull << 30), m.total_bytes / double(1ull << 30));
  return 0;
}
