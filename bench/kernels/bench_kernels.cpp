// Speed of the fast CPU kernels on the shapes of Nemotron 3 Nano 4B:
//   bench_kernels --benchmark_filter=Linear
// GFLOP/s is reported as a counter (2 * rows * in * out for linear;
// 4 * visible (query, key) pairs * q_heads * head_dim for attention).
// Like the engine, it first makes OpenBLAS use fast kernels on CPUs its
// cpuid table does not know (kernels/blas_runtime.h); the context line
// `openblas_core` says which it uses (OPENBLAS_CORETYPE=Prescott shows what
// the fallback would cost).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "attention.h"
#include "blas_runtime.h"
#include "linear.h"
#include "weight_view.h"

namespace {

using namespace ringscan;

std::vector<float> random_floats(int64_t n, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(gen);
  return v;
}

// Args: rows, in, out, dtype (0 F32, 1 BF16, 2 F16).
void BM_Linear(benchmark::State& state) {
  const int64_t rows = state.range(0), in = state.range(1), out = state.range(2);
  const DType dtype = state.range(3) == 0   ? DType::F32
                      : state.range(3) == 1 ? DType::BF16
                                            : DType::F16;
  const std::vector<float> x = random_floats(rows * in, 1);
  const std::vector<float> wf = random_floats(out * in, 2);
  std::vector<uint16_t> wh;
  const void* wdata = wf.data();
  if (dtype != DType::F32) {
    wh.resize(wf.size());
    for (size_t i = 0; i < wf.size(); ++i)
      wh[i] = dtype == DType::BF16 ? f32_to_bf16(wf[i]) : f32_to_f16(wf[i]);
    wdata = wh.data();
  }
  const WeightView w{dtype, wdata, out, in};
  std::vector<float> y(static_cast<size_t>(rows * out));
  for (auto _ : state) {
    kernels::cpu::linear(x.data(), in, rows, w, y.data(), out);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetLabel(dtype_name(dtype));
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * rows * in * out * state.iterations() / 1e9,
                                                 benchmark::Counter::kIsRate);
}

void LinearArgs(benchmark::internal::Benchmark* b) {
  for (int dtype : {0, 1, 2})
    for (int64_t rows : {1, 16, 512, 2048}) {
      b->Args({rows, 3136, 12544, dtype});  // MLP up_proj
    }
  for (int dtype : {0, 1})
    for (int64_t rows : {1, 512}) b->Args({rows, 12544, 3136, dtype});  // MLP down_proj
}
BENCHMARK(BM_Linear)->Apply(LinearArgs)->Unit(benchmark::kMillisecond)->UseRealTime();

// Args: lq, lk, causal (query block at the end of the keys, as the diagonal
// block of causal attention), shape (0: Nemotron-H attention, 40 q heads, 8 kv
// heads, 128; 1: the demo model's, 8 / 2 / 32), path (0: the default, the fused
// AVX-512 kernel where the CPU has it; 1: the portable sgemm-tile kernel).
void BM_AttentionBlock(benchmark::State& state) {
  const int64_t lq = state.range(0), lk = state.range(1);
  const bool causal = state.range(2) != 0;
  const kernels::AttentionShape s = state.range(3) ? kernels::AttentionShape{8, 2, 32} : kernels::AttentionShape{40, 8, 128};
  const bool portable = state.range(4) != 0;
  if (!portable && !kernels::cpu::attention_avx512_available()) {
    state.SkipWithError("this CPU has no AVX-512F: the default path is the portable one (path 1)");
    return;
  }
  kernels::cpu::set_attention_path(portable ? kernels::cpu::CpuAttentionPath::Portable
                                            : kernels::cpu::CpuAttentionPath::Auto);
  const int64_t qw = s.q_heads * s.head_dim, kw = s.kv_heads * s.head_dim;
  const std::vector<float> q = random_floats(lq * qw, 1), k = random_floats(lk * kw, 2),
                           v = random_floats(lk * kw, 3);
  std::vector<float> acc(static_cast<size_t>(lq * qw)), m(static_cast<size_t>(lq * s.q_heads)),
      l(m.size());
  const int64_t q_pos0 = lk - lq;  // queries are the last lq positions of the keys
  for (auto _ : state) {
    kernels::cpu::attention_init(s, lq, acc.data(), m.data(), l.data());
    kernels::cpu::attention_block(s, q.data(), qw, lq, q_pos0, k.data(), kw, v.data(), kw, lk, 0,
                                  1.f / std::sqrt(static_cast<float>(s.head_dim)), causal, acc.data(), m.data(),
                                  l.data());
    benchmark::DoNotOptimize(acc.data());
    benchmark::ClobberMemory();
  }
  kernels::cpu::set_attention_path(kernels::cpu::CpuAttentionPath::Auto);
  double pairs = 0;  // visible (query, key) pairs
  for (int64_t i = 0; i < lq; ++i) pairs += causal ? std::min(lk, q_pos0 + i + 1) : lk;
  state.counters["GFLOP/s"] = benchmark::Counter(
      4.0 * pairs * s.q_heads * s.head_dim * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}
void AttentionArgs(benchmark::internal::Benchmark* b) {
  for (int64_t path : {0, 1}) {
    b->Args({1, 4096, 0, 0, path});     // decode: one query against a KV shard
    b->Args({512, 512, 1, 0, path});    // diagonal block
    b->Args({512, 4096, 0, 0, path});   // off-diagonal ring block
    b->Args({2048, 2048, 1, 0, path});
    b->Args({256, 16384, 0, 1, path});  // ringscan ask, demo model: 256 questions' queries over a 16K prefix
    b->Args({4096, 4096, 1, 1, path});  // the demo model's causal prefill of 4K tokens
    b->Args({256, 65536, 0, 1, path});  // ask against a 64K prefix: K/V (32 MiB) past the L3
  }
}
BENCHMARK(BM_AttentionBlock)->Apply(AttentionArgs)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  ringscan::reexec_with_fast_blas_if_needed(argv);
  benchmark::AddCustomContext("openblas_core", ringscan::blas_core_name());
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
