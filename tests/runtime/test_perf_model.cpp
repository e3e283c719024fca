// The performance model: its ring accounting against the layouts' causal work
// and the K/V formula of docs/sequence-parallel.md, the limits it must respect
// (efficiency <= 1, a slower link never helps), ranks sharing a device, and
// the calibration from bench_ops lines.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "model/model_flops.h"
#include "model/presets.h"
#include "runtime/perf_model.h"
#include "util/error.h"

namespace ringscan {
namespace {

const PhaseTime& phase(const PerfPrediction& p, const std::string& name) {
  for (const auto& ph : p.phases)
    if (ph.phase == name) return ph;
  throw Error("no phase " + name);
}

DeviceRates unit_rates() {
  DeviceRates d;
  d.name = "unit";
  d.gemm_flops = d.attention_flops = d.ssd_flops = 1e12;
  d.memory_bytes = 1e12;
  return d;
}

LinkRates link(double gbs, double us) {
  LinkRates l;
  l.name = "test";
  l.bytes_per_s = gbs * 1e9;
  l.latency_s = us * 1e-6;
  return l;
}

PerfQuery query(int64_t tokens, int ranks, LayoutKind layout) {
  PerfQuery q;
  q.tokens = tokens;
  q.ranks = ranks;
  q.layout = layout;
  return q;
}

// Causal attention work of a whole sequence, all attention layers, at the unit rate.
double causal_attention_s(const ModelConfig& c, int64_t T) {
  return c.count(LayerKind::Attention) * attention_pair_flops(c) * (double)T * (T + 1) / 2 / 1e12;
}

TEST(PerfModel, OneRankCountsTheWholePrefill) {
  const ModelConfig c = preset_config("nano-4b");
  const auto p = predict_prefill(c, query(8192, 1, LayoutKind::Zigzag), unit_rates(), link(1, 1));
  // Every matrix phase at 1 TFLOP/s: their sum is the model's FLOPs in TFLOPs.
  double matrix_s = 0;
  for (const auto& ph : p.phases)
    if (ph.phase.find("pointwise") == std::string::npos) matrix_s += ph.compute_s;
  EXPECT_NEAR(matrix_s, prefill_flops(c, 8192) / 1e12, 1e-9 * matrix_s);
  EXPECT_EQ(p.exposed_comm_s, 0);
  EXPECT_DOUBLE_EQ(p.total_s, p.single_device_s);
  EXPECT_DOUBLE_EQ(p.parallel_efficiency, 1.0);
}

TEST(PerfModel, ZigzagBalancesTheRingAndContiguousWaitsForTheLastRank) {
  const ModelConfig c = preset_config("demo");
  const int64_t T = 4096;
  for (int P : {2, 3, 4, 8}) {
    const auto z = predict_prefill(c, query(T, P, LayoutKind::Zigzag), unit_rates(), link(1e6, 0));
    const auto k = predict_prefill(c, query(T, P, LayoutKind::Contiguous), unit_rates(), link(1e6, 0));
    const double whole = causal_attention_s(c, T);
    // Zigzag: every step's busiest rank does 1/P of the whole (up to a token of rounding).
    EXPECT_NEAR(phase(z, "ring attention").compute_s * P / whole, 1.0, 2e-3) << "P=" << P;
    // Contiguous: a diagonal block, then P-1 full ones on the last rank: (2P-1)/P of the ideal.
    EXPECT_NEAR(phase(k, "ring attention").compute_s * P / whole, (2.0 * P - 1) / P, 2e-3) << "P=" << P;
  }
}

TEST(PerfModel, RingBytesFollowTheFormula) {
  const ModelConfig c = preset_config("nano-4b");
  for (int P : {2, 4, 8}) {
    const int64_t T = 1 << 20;
    PerfQuery q = query(T, P, LayoutKind::Zigzag);
    for (int kv : {4, 2}) {
      q.kv_bytes_per_elem = kv;
      const auto p = predict_prefill(c, q, unit_rates(), link(450, 3));
      // P-1 blocks of T/P tokens, 2 * kv_heads * head_dim elements each, per attention layer.
      const double expect = c.count(LayerKind::Attention) * (P - 1.0) * (T / P) * 2 * c.num_kv_heads * c.head_dim * kv;
      EXPECT_DOUBLE_EQ(phase(p, "ring attention").bytes_per_rank, expect) << "P=" << P << " kv=" << kv;
    }
  }
}

TEST(PerfModel, EfficiencyIsBoundedAndASlowerLinkNeverHelps) {
  const ModelConfig c = preset_config("nano-4b");
  for (int64_t T : {4096LL, 131072LL, 1LL << 20})
    for (int P : {2, 4, 8, 32}) {
      const auto fast = predict_prefill(c, query(T, P, LayoutKind::Zigzag), unit_rates(), link(450, 3));
      const auto slow = predict_prefill(c, query(T, P, LayoutKind::Zigzag), unit_rates(), link(5, 50));
      EXPECT_GT(fast.parallel_efficiency, 0);
      EXPECT_LE(fast.parallel_efficiency, 1.0 + 1e-9);
      EXPECT_GE(slow.total_s, fast.total_s);
      EXPECT_GE(slow.exposed_comm_s, fast.exposed_comm_s);
    }
  // A long document hides the ring behind compute; a short one on a slow link cannot.
  const auto long_doc = predict_prefill(c, query(1 << 20, 8, LayoutKind::Zigzag), unit_rates(), link(450, 3));
  EXPECT_EQ(phase(long_doc, "ring attention").exposed_comm_s, 0);
  const auto short_doc = predict_prefill(c, query(2048, 8, LayoutKind::Zigzag), unit_rates(), link(0.1, 50));
  EXPECT_GT(phase(short_doc, "ring attention").exposed_comm_s, 0);
}

TEST(PerfModel, StateScanHidesBehindTheLastSsdPassOutputsOnOwnDevicesOnly) {
  const ModelConfig c = preset_config("nano-4b");
  // 1M tokens on 8 ranks: 64K-token segments, so the last pass's outputs
  // (thousands of tokens) cover a scan on a fast link entirely.
  const auto fast = predict_prefill(c, query(1 << 20, 8, LayoutKind::Zigzag), unit_rates(), link(450, 3));
  EXPECT_GT(phase(fast, "state scan").comm_s, 0);
  EXPECT_EQ(phase(fast, "state scan").exposed_comm_s, 0);
  // A link 10^4 times slower: the scan outlasts those outputs; what shows is
  // the scan less the same hidden part at any link speed.
  const auto slow = predict_prefill(c, query(1 << 20, 8, LayoutKind::Zigzag), unit_rates(), link(0.045, 3000));
  const PhaseTime& s = phase(slow, "state scan");
  EXPECT_GT(s.exposed_comm_s, 0);
  EXPECT_LT(s.exposed_comm_s, s.comm_s);
  const auto slower = predict_prefill(c, query(1 << 20, 8, LayoutKind::Zigzag), unit_rates(), link(0.02, 6000));
  const PhaseTime& t = phase(slower, "state scan");
  EXPECT_NEAR(t.comm_s - t.exposed_comm_s, s.comm_s - s.exposed_comm_s, 1e-9 * s.comm_s);
  // Ranks sharing a device exchange through host memory: nothing overlaps.
  PerfQuery shared = query(1 << 20, 8, LayoutKind::Zigzag);
  shared.ranks_per_device = 2;
  const auto sh = predict_prefill(c, shared, unit_rates(), link(450, 3));
  EXPECT_DOUBLE_EQ(phase(sh, "state scan").exposed_comm_s, phase(sh, "state scan").comm_s);
}

TEST(PerfModel, RanksSharingADeviceSplitItsRates) {
  const ModelConfig c = preset_config("demo");
  PerfQuery q = query(16384, 4, LayoutKind::Zigzag);
  const auto own = predict_prefill(c, q, unit_rates(), link(1e6, 0));
  q.ranks_per_device = 4;
  const auto shared = predict_prefill(c, q, unit_rates(), link(1e6, 0));
  // Compute phases take 4x as long; one device does the whole document either way.
  EXPECT_NEAR(phase(shared, "mlp").compute_s, 4 * phase(own, "mlp").compute_s, 1e-12);
  EXPECT_NEAR(shared.single_device_s, own.single_device_s, 1e-12);
  EXPECT_LE(shared.parallel_efficiency, 1.0 + 1e-9);
  EXPECT_GT(shared.parallel_efficiency, 0.5);
}

TEST(PerfModel, CalibratesFromBenchOpsLines) {
  const std::string path = ::testing::TempDir() + "perf_model_calib.jsonl";
  {
    std::ofstream f(path);
    f << "bench_ops: plain log line\n";
    f << R"({"bench": "ops_setup", "backend": "cuda"})" << "\n";
    f << R"({"bench": "op", "op": "gemm_bf16", "case": "a", "ms": 2.0, "tflops": 500.0, "gbs": 1.0, "bound": "bf16 peak"})" << "\n";
    f << R"({"bench": "op", "op": "gemm_bf16", "case": "b", "ms": 2.0, "tflops": 300.0, "gbs": 1.0, "bound": "bf16 peak"})" << "\n";
    f << R"({"bench": "op", "op": "attention_block", "case": "c", "ms": 1.0, "tflops": 200.0, "gbs": 1.0, "bound": "bf16 peak"})" << "\n";
    f << R"({"bench": "op", "op": "ssd_scan", "case": "d", "ms": 1.0, "tflops": 50.0, "gbs": 1.0, "bound": "bf16 peak"})" << "\n";
    f << R"({"bench": "op", "op": "rmsnorm", "case": "e", "ms": 1.0, "tflops": 0.0, "gbs": 3000.0, "bound": "memory bandwidth"})" << "\n";
    f << R"({"bench": "op", "op": "silu_mul", "case": "f", "ms": 3.0, "tflops": 0.0, "gbs": 1000.0, "bound": "memory bandwidth"})" << "\n";
    f << R"({"bench": "op", "op": "sample", "case": "g", "error": "x"})" << "\n";
    // Decode-only ops do not calibrate the prefill.
    f << R"({"bench": "op", "op": "sample", "case": "h", "ms": 1.0, "tflops": 0.0, "gbs": 1.0, "bound": "memory bandwidth"})" << "\n";
    f << R"({"bench": "op", "op": "ssd_step", "case": "i", "ms": 1.0, "tflops": 0.0, "gbs": 1.0, "bound": "memory bandwidth"})" << "\n";
  }
  const DeviceRates d = device_rates_from_bench_ops(path);
  EXPECT_DOUBLE_EQ(d.gemm_flops, 400e12);  // total work over total time
  EXPECT_DOUBLE_EQ(d.attention_flops, 200e12);
  EXPECT_DOUBLE_EQ(d.ssd_flops, 50e12);
  EXPECT_DOUBLE_EQ(d.memory_bytes, 1500e9);

  {
    std::ofstream f(path);
    f << R"({"bench": "op", "op": "gemm_bf16", "case": "a", "ms": 2.0, "tflops": 500.0, "gbs": 1.0, "bound": "bf16 peak"})" << "\n";
  }
  try {
    device_rates_from_bench_ops(path);
    FAIL() << "a calibration without attention must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("attention"), std::string::npos) << e.what();
  }
  std::remove(path.c_str());
}

TEST(PerfModel, BuiltInDevicesAndLinks) {
  for (const auto& n : builtin_device_names()) EXPECT_GT(builtin_device(n).gemm_flops, 0) << n;
  for (const auto& n : builtin_link_names()) EXPECT_GT(builtin_link(n).bytes_per_s, 0) << n;
  EXPECT_THROW(builtin_device("a100"), Error);
  EXPECT_THROW(builtin_link("ethernet"), Error);
}

}  // namespace
}  // namespace ringscan
