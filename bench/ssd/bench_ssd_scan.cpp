// Mamba-2 SSD scan speed for Nemotron 3 Nano 4B's mixer shape (96 heads x 80,
// 8 groups, state 128, chunk 256): the chunked CPU kernel at several lengths,
// the state correction of sequence parallelism, and the plain reference at
// small lengths (its cost per token does not depend on the length, so the
// tokens/s ratio to the chunked kernel holds at any length).
//
// FLOPs counted (multiply-add = 2), the useful work of the chunked algorithm,
// per chunk of q tokens:
//   C B^T, causal half, per group          G * q(q+1) * N
//   (C B^T o L)(dt x), causal half, per head  H * q(q+1) * P
//   state -> output C S^T, per head        H * 2 q P N
//   chunk state (dt x)^T B, per head       H * 2 q P N
// i.e. about G (Q+1) N + H ((Q+1) P + 4 P N) = 6.2 MFLOP per token for this
// shape. The token-by-token recurrence does H * 4 P N = 3.9 MFLOP per token;
// the reference benchmark reports its GFLOP/s by that count.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include "blas_runtime.h"
#include "ssd_scan.h"

namespace {

using ringscan::kernels::SsdShape;

SsdShape nano4b_shape(int64_t len) { return SsdShape{len, 96, 80, 8, 128, 256}; }

// The mixer's layout: x, B and C are column slices of the conv output rows
// [x | B | C]; y and dt are contiguous.
struct Inputs {
  SsdShape s;
  int64_t ld_xbc;
  std::vector<float> xbc, dt, A, y, init, final_state;
  const float* x() const { return xbc.data(); }
  const float* B() const { return xbc.data() + s.heads * s.head_dim; }
  const float* C() const { return B() + s.groups * s.state; }
};

Inputs& inputs_for(int64_t len) {
  static std::map<int64_t, Inputs> cache;
  auto it = cache.find(len);
  if (it != cache.end()) return it->second;
  Inputs& in = cache[len];
  in.s = nano4b_shape(len);
  const SsdShape& s = in.s;
  in.ld_xbc = s.heads * s.head_dim + 2 * s.groups * s.state;
  std::mt19937_64 gen(1234);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_real_distribution<float> log_dt(std::log(0.001f), std::log(0.1f));
  std::uniform_real_distribution<float> log_a(0.f, std::log(16.f));
  in.xbc.resize(len * in.ld_xbc);
  for (auto& v : in.xbc) v = normal(gen);
  in.dt.resize(len * s.heads);
  for (auto& v : in.dt) v = std::exp(log_dt(gen));
  in.A.resize(s.heads);
  for (auto& v : in.A) v = -std::exp(log_a(gen));
  in.y.resize(len * s.heads * s.head_dim);
  in.init.resize(s.heads * s.head_dim * s.state);
  for (auto& v : in.init) v = normal(gen);
  in.final_state.resize(in.init.size());
  return in;
}

double chunked_flops(const SsdShape& s) {
  double f = 0;
  for (int64_t c0 = 0; c0 < s.len; c0 += s.chunk) {
    const double q = std::min(s.chunk, s.len - c0);
    f += s.groups * q * (q + 1) * s.state;
    f += s.heads * (q * (q + 1) * s.head_dim + 4.0 * q * s.head_dim * s.state);
  }
  return f;
}

double recurrence_flops(const SsdShape& s) {
  return 4.0 * s.len * s.heads * s.head_dim * s.state;
}

void set_counters(benchmark::State& st, const SsdShape& s, double flops_per_call) {
  const double calls = static_cast<double>(st.iterations());
  // Rates print as "<value>/s".
  st.counters["tokens"] = benchmark::Counter(calls * s.len, benchmark::Counter::kIsRate);
  st.counters["FLOP"] = benchmark::Counter(calls * flops_per_call, benchmark::Counter::kIsRate);
  st.counters["threads"] = omp_get_max_threads();
}

template <auto Scan>
void run_scan(benchmark::State& st, double (*flops)(const SsdShape&)) {
  Inputs& in = inputs_for(st.range(0));
  for (auto _ : st) {
    Scan(in.s, in.x(), in.ld_xbc, in.dt.data(), in.A.data(), in.B(), in.ld_xbc, in.C(),
         in.ld_xbc, in.init.data(), in.y.data(), in.s.heads * in.s.head_dim,
         in.final_state.data());
    benchmark::DoNotOptimize(in.y.data());
    benchmark::ClobberMemory();
  }
  set_counters(st, in.s, flops(in.s));
}

void BM_SsdScanChunked(benchmark::State& st) {
  run_scan<ringscan::kernels::cpu::ssd_scan>(st, chunked_flops);
}
void BM_SsdScanReference(benchmark::State& st) {
  run_scan<ringscan::kernels::ref::ssd_scan>(st, recurrence_flops);
}

// y += exp(A cumsum dt) * (H C): 2 P N per head and token.
void BM_SsdStateCorrection(benchmark::State& st) {
  Inputs& in = inputs_for(st.range(0));
  for (auto _ : st) {
    ringscan::kernels::cpu::ssd_state_correction(in.s, in.dt.data(), in.A.data(), in.C(),
                                                 in.ld_xbc, in.init.data(), in.y.data(),
                                                 in.s.heads * in.s.head_dim,
                                                 in.final_state.data());
    benchmark::DoNotOptimize(in.y.data());
    benchmark::ClobberMemory();
  }
  set_counters(st, in.s, 2.0 * in.s.len * in.s.heads * in.s.head_dim * in.s.state);
}

BENCHMARK(BM_SsdScanChunked)->ArgName("len")->Arg(256)->Arg(1024)->Arg(4096)
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_SsdScanReference)->ArgName("len")->Arg(16)->Arg(64)
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_SsdStateCorrection)->ArgName("len")->Arg(4096)
    ->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  // As the engine does: not OpenBLAS's generic kernels on a CPU it fails to
  // recognise. Which kernels ran is part of the result.
  ringscan::reexec_with_fast_blas_if_needed(argv);
  benchmark::Initialize(&argc, argv);
  benchmark::AddCustomContext("openblas_core", ringscan::blas_core_name());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
