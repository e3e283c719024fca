// The perf mode of the op tests (tests/backend_ops): every op family's perf
// cases at a model preset's shapes, on one backend, one JSON line per case:
//   bench_ops [--backend cpu|cuda] [--preset nano-4b] [--tokens 4096] [--ops rmsnorm,gemm_bf16]
//             [--min-seconds 0.2] [--peak-tflops T] [--fp32-peak-tflops T] [--bandwidth-gbs G]
// Each case is set up once, run once to warm up, then timed over as many runs
// as fill --min-seconds (the backend's queue drained before the clock stops).
// It reports ms per call, TFLOP/s, GB/s (each input read once, each output
// written once: the case's bytes()) and the fraction of the roofline that
// binds it: the bf16 tensor-core peak for the tensor-core ops, the fp32 peak
// for the other matrix ops, memory bandwidth for the memory-bound ones.
// Peaks: cuda defaults to an H200 SXM's data sheet (989 dense bf16 TFLOP/s,
// 67 fp32, 4 800 GB/s); cpu measures its own at start (an OpenBLAS sgemm of
// 2048^3, and a 512 MiB copy), so its fractions are of what this machine
// reaches, not of a data sheet. Flags override either.
#include <cblas.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "backend_ops/op_case.h"
#include "bench_util.h"
#include "kernels/blas_runtime.h"
#include "model/presets.h"

using namespace ringscan;
using namespace ringscan::test::ops;

namespace {

struct Peaks {
  double bf16_tflops = 0, fp32_tflops = 0, gbs = 0;
};

// What this CPU reaches: fp32 GEMM through OpenBLAS, and a large copy (read +
// write counted); the best of several calls, so that a busy moment does not
// lower the peak the ops are judged against.
template <class F>
double best_seconds(F f, int calls) {
  double best = 1e30;
  for (int i = 0; i < calls; ++i) {
    const double t0 = bench::now();
    f();
    best = std::min(best, bench::now() - t0);
  }
  return best;
}

Peaks measure_cpu_peaks() {
  Peaks p;
  const int n = 2048;
  std::vector<float> a(size_t(n) * n, 1.f), b(size_t(n) * n, 0.5f), c(size_t(n) * n);
  const double gemm = best_seconds(
      [&] { cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, c.data(), n); },
      5);
  p.fp32_tflops = 2.0 * n * n * double(n) / gemm / 1e12;
  p.bf16_tflops = p.fp32_tflops;  // the cpu backend uses no bf16 matrix units
  const size_t bytes = size_t(512) << 20;
  std::vector<char> src(bytes, 1), dst(bytes, 0);
  p.gbs = 2.0 * bytes / best_seconds([&] { std::memcpy(dst.data(), src.data(), bytes); }, 5) / 1e9;
  return p;
}

PerfShapes shapes_of(const ModelConfig& c, int64_t tokens) {
  PerfShapes p;
  p.tokens = tokens;
  p.hidden = c.hidden_size, p.vocab = c.vocab_size, p.intermediate = c.intermediate_size;
  p.mamba_heads = c.mamba_heads, p.mamba_head_dim = c.mamba_head_dim, p.state = c.ssm_state;
  p.groups = c.n_groups, p.conv_kernel = c.conv_kernel, p.chunk = c.chunk_size;
  p.d_inner = c.d_inner(), p.conv_dim = c.conv_dim(), p.in_proj = c.in_proj_dim();
  p.q_heads = c.num_heads, p.kv_heads = c.num_kv_heads, p.head_dim = c.head_dim;
  return p;
}

std::string json_escape(const std::string& s) {
  std::string r;
  for (char ch : s) r += (ch == '"' || ch == '\\') ? std::string("\\") + ch : std::string(1, ch);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  reexec_with_fast_blas_if_needed(argv);
  std::string backend_name = "cuda", preset = "nano-4b";
  int64_t tokens = 4096;
  double min_seconds = 0.2;
  std::set<std::string> only;
  Peaks flags;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_ops: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--backend") backend_name = next();
    else if (a == "--preset") preset = next();
    else if (a == "--tokens") tokens = std::atoll(next().c_str());
    else if (a == "--ops") {
      std::stringstream ss(next());
      for (std::string x; std::getline(ss, x, ',');) only.insert(x);
    }
    else if (a == "--min-seconds") min_seconds = std::atof(next().c_str());
    else if (a == "--peak-tflops") flags.bf16_tflops = std::atof(next().c_str());
    else if (a == "--fp32-peak-tflops") flags.fp32_tflops = std::atof(next().c_str());
    else if (a == "--bandwidth-gbs") flags.gbs = std::atof(next().c_str());
    else {
      std::fprintf(stderr, "bench_ops: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  Backend* backend = nullptr;
  for (Backend* b : backends())
    if (backend_name == b->name()) backend = b;
  if (!backend) {
    std::fprintf(stderr, "bench_ops: no backend \"%s\" in this build (cpu%s)\n", backend_name.c_str(),
                 backends().size() > 1 ? ", cuda" : "");
    return 2;
  }
  if (const std::string why = backend->unavailable(); !why.empty()) {
    std::fprintf(stderr, "bench_ops: backend %s cannot run here: %s\n", backend->name(), why.c_str());
    return 2;
  }
  Peaks pk = backend->is_cuda() ? Peaks{989, 67, 4800} : measure_cpu_peaks();
  if (flags.bf16_tflops > 0) pk.bf16_tflops = flags.bf16_tflops;
  if (flags.fp32_tflops > 0) pk.fp32_tflops = flags.fp32_tflops;
  if (flags.gbs > 0) pk.gbs = flags.gbs;
  std::printf("{\"bench\": \"ops_setup\", \"backend\": \"%s\", \"preset\": \"%s\", \"tokens\": %lld, "
              "\"peak_bf16_tflops\": %.2f, \"peak_fp32_tflops\": %.2f, \"bandwidth_gbs\": %.0f, \"peaks\": \"%s\"}\n",
              backend->name(), preset.c_str(), static_cast<long long>(tokens), pk.bf16_tflops, pk.fp32_tflops, pk.gbs,
              backend->is_cuda() ? "H200 data sheet unless given" : "measured here unless given");
  std::fflush(stdout);

  const PerfShapes shapes = shapes_of(preset_config(preset), tokens);
  int errors = 0;
  for (const OpFamily& f : op_families()) {
    if (!only.empty() && !only.count(f.op)) continue;
    for (const std::unique_ptr<OpCase>& c : f.cases(&shapes)) {
      if (!c->supports(*backend)) continue;
      try {
        Memory m(*backend);
        c->setup(m);
        c->run(m);  // warm-up (and first-call setup inside the op)
        backend->finish();
        int reps = 0;
        const double t0 = bench::now();
        do {
          c->run(m);
          ++reps;
          if (reps % 4 == 0 || bench::now() - t0 > min_seconds) backend->finish();
        } while (bench::now() - t0 < min_seconds && reps < 10000);
        backend->finish();
        const double sec = (bench::now() - t0) / reps;
        const double tflops = c->flops() / sec / 1e12, gbs = c->bytes() / sec / 1e9;
        const bool matrix = c->flops() > 0;
        const double peak = c->on_tensor_cores() ? pk.bf16_tflops : pk.fp32_tflops;
        const double frac = matrix ? tflops / peak : gbs / pk.gbs;
        std::printf("{\"bench\": \"op\", \"backend\": \"%s\", \"op\": \"%s\", \"case\": \"%s\", \"tokens\": %lld, "
                    "\"ms\": %.4f, \"tflops\": %.3f, \"gbs\": %.1f, \"roofline_fraction\": %.3f, \"bound\": \"%s\"}\n",
                    backend->name(), f.op.c_str(), json_escape(c->describe()).c_str(), static_cast<long long>(tokens),
                    sec * 1e3, tflops, gbs, frac,
                    matrix ? (c->on_tensor_cores() ? "bf16 peak" : "fp32 peak") : "memory bandwidth");
      } catch (const std::exception& e) {
        ++errors;
        std::printf("{\"bench\": \"op\", \"backend\": \"%s\", \"op\": \"%s\", \"case\": \"%s\", \"error\": \"%s\"}\n",
                    backend->name(), f.op.c_str(), json_escape(c->describe()).c_str(), json_escape(e.what()).c_str());
      }
      std::fflush(stdout);
    }
  }
  return errors ? 1 : 0;
}
