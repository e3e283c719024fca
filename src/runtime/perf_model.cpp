#include "runtime/perf_model.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>

#include "kernels/ssd_scan.h"
#include "model/model_flops.h"
#include "util/error.h"

namespace ringscan {
namespace {

// Bytes the memory-bound ops read and write per token, whole model. Counted
// from the engine's dataflow (fp32 residual, bf16 GEMM inputs): each layer's
// input norm (read fp32, write bf16), Mamba's conv (in and out), dt and gated
// norm (y and z in, bf16 out), attention's RoPE on q and k, the K/V append and
// the finalize (fp32 in, bf16 out), the MLP's activation (bf16 in place), then
// the final norm and the log-softmax's two passes over the logits.
double pointwise_bytes_per_token(const ModelConfig& c) {
  const double D = static_cast<double>(c.hidden_size);
  double b = 0;
  for (auto k : c.layers) {
    b += 6 * D;
    switch (k) {
      case LayerKind::Mamba:
        b += 8.0 * c.conv_dim() + 8.0 * c.mamba_heads + 10.0 * c.d_inner();
        break;
      case LayerKind::Attention: {
        const double q = static_cast<double>(c.num_heads * c.head_dim), kv = static_cast<double>(c.num_kv_heads * c.head_dim);
        b += 8 * (q + kv) + 8 * kv + 6 * q;
        break;
      }
      case LayerKind::Mlp: b += 4.0 * c.intermediate_size; break;
    }
  }
  return b + 6 * D + 8.0 * c.vocab_size;
}

// Visible (query, key) pairs between a query range and a key range under the
// causal mask (key position <= query position).
double visible_pairs(const Segment& q, const Segment& k) {
  double n = 0;
  // Queries before k.begin see nothing; from there each sees min(t+1, k.end) - k.begin keys.
  const int64_t first = std::max(q.begin, k.begin), last = q.end();  // [first, last)
  if (first >= last) return 0;
  // Part where t + 1 <= k.end: keys t + 1 - k.begin (an arithmetic series).
  const int64_t ramp_end = std::min(last, k.end());
  if (ramp_end > first) {
    const double a = static_cast<double>(first + 1 - k.begin), z = static_cast<double>(ramp_end - k.begin);
    n += (a + z) * static_cast<double>(ramp_end - first) / 2;
  }
  // Part where t + 1 > k.end: all k.len keys.
  if (last > ramp_end) n += static_cast<double>(last - std::max(ramp_end, first)) * static_cast<double>(k.len);
  return n;
}

double message_s(const LinkRates& link, double bytes) { return bytes > 0 ? link.latency_s + bytes / link.bytes_per_s : 0; }

PhaseTime compute_phase(const char* name, double seconds) {
  PhaseTime p;
  p.phase = name;
  p.compute_s = seconds;
  return p;
}

PhaseTime exposed_comm_phase(const char* name, double comm_s, double bytes) {
  PhaseTime p;
  p.phase = name;
  p.comm_s = p.exposed_comm_s = comm_s;
  p.bytes_per_rank = bytes;
  return p;
}

PerfPrediction predict(const ModelConfig& c, const PerfQuery& q, const DeviceRates& dev0, const LinkRates& link) {
  if (q.tokens < 1 || q.ranks < 1 || q.ranks_per_device < 1)
    throw Error("performance model: tokens, ranks and ranks per device must be positive");
  // Ranks sharing a device split its rates.
  DeviceRates dev = dev0;
  const double share = std::min(q.ranks, q.ranks_per_device);
  dev.gemm_flops /= share;
  dev.attention_flops /= share;
  dev.ssd_flops /= share;
  dev.memory_bytes /= share;

  const SequenceLayout layout = make_layout(q.tokens, q.ranks, q.layout);
  const int P = q.ranks;
  int64_t n = 0;  // tokens on the busiest rank
  for (int r = 0; r < P; ++r) n = std::max(n, layout.tokens_of(r));
  const double tn = static_cast<double>(n);
  const double mamba = static_cast<double>(c.count(LayerKind::Mamba));
  const double attn = static_cast<double>(c.count(LayerKind::Attention));
  const double mlp = static_cast<double>(c.count(LayerKind::Mlp));

  PerfPrediction out;
  auto add = [&](PhaseTime p) { out.phases.push_back(std::move(p)); };
  add(compute_phase("mamba projections", mamba * tn * projection_flops_per_token(c, LayerKind::Mamba) / dev.gemm_flops));
  add(compute_phase("attention projections",
                    attn * tn * projection_flops_per_token(c, LayerKind::Attention) / dev.gemm_flops));
  add(compute_phase("mlp", mlp * tn * projection_flops_per_token(c, LayerKind::Mlp) / dev.gemm_flops));
  add(compute_phase("lm_head", tn * lm_head_flops_per_token(c) / dev.gemm_flops));
  add(compute_phase("pointwise (norms, conv, activations, log-softmax)",
                    tn * pointwise_bytes_per_token(c) / dev.memory_bytes));
  // Each rank scans its own segments; a segment's intra-chunk work is capped by its length.
  add(compute_phase("ssd scan", mamba * tn * ssd_flops_per_token(c, n) / dev.ssd_flops));

  if (P > 1 && mamba > 0) {
    // Halo: one message per segment whose successor lives on another rank; the busiest rank's count.
    int halo_msgs = 0;
    for (int r = 0; r < P; ++r) {
      int m = 0;
      for (int s : layout.segments_of(r))
        if (s + 1 < static_cast<int>(layout.segments.size()) && layout.segments[s + 1].owner != r) ++m;
      halo_msgs = std::max(halo_msgs, m);
    }
    const double halo_bytes = static_cast<double>((c.conv_kernel - 1) * c.conv_dim()) * 4;
    add(exposed_comm_phase("conv halo", mamba * halo_msgs * message_s(link, halo_bytes),
                           mamba * halo_msgs * halo_bytes));
    // State scan: ceil(log2 P) rounds per run of the layout, one state message
    // each. It starts when a rank's final states are complete and overlaps the
    // output stages of its last segment's last SSD pass (kernels/ssd_scan.h);
    // what they do not cover is exposed. The rank hiding least sets it. Ranks
    // sharing a device exchange through host memory (MPI): no overlap there.
    const double rounds = std::ceil(std::log2(static_cast<double>(P))) * static_cast<double>(layout.scan_runs().size());
    const double state_bytes = static_cast<double>(c.mamba_heads * (1 + c.mamba_head_dim * c.ssm_state)) * 4;
    const double scan_s = rounds * message_s(link, state_bytes);
    double hide_s = -1;
    for (int r = 0; r < P; ++r) {
      int64_t last = 0;  // tokens of rank r's last non-empty segment
      for (int s : layout.segments_of(r))
        if (layout.segments[s].len) last = layout.segments[s].len;
      if (last == 0 || q.ranks_per_device > 1) continue;
      const kernels::SsdShape shape{last, c.mamba_heads, c.mamba_head_dim, c.n_groups, c.ssm_state, c.chunk_size};
      const int64_t Q = std::min(c.chunk_size, last);
      const int64_t pass = std::min(last, kernels::ssd_scan_chunks_per_pass(shape, kernels::kSsdPassScratchBytes) * Q);
      const double hide = static_cast<double>(last - (last - 1) / pass * pass) *
                          ssd_output_flops_per_token(c, last) / dev.ssd_flops;
      hide_s = hide_s < 0 ? hide : std::min(hide_s, hide);
    }
    PhaseTime scan = exposed_comm_phase("state scan", mamba * scan_s, mamba * rounds * state_bytes);
    scan.exposed_comm_s = mamba * std::max(0.0, scan_s - std::max(0.0, hide_s));  // hide_s < 0: nothing hides it
    add(scan);
    add(compute_phase("state correction", mamba * tn * ssd_correction_flops_per_token(c) / dev.ssd_flops));
  }

  if (attn > 0) {
    // Ring: at step s rank r folds rank (r - s)'s K/V block in; a step lasts as
    // long as its busiest rank, and the next block's transfer runs during it.
    const double kv_row = 2.0 * static_cast<double>(c.num_kv_heads * c.head_dim) * q.kv_bytes_per_elem;
    PhaseTime ring;
    ring.phase = "ring attention";
    for (int s = 0; s < P; ++s) {
      double step_compute = 0, next_transfer = 0, next_bytes = 0;
      for (int r = 0; r < P; ++r) {
        const int src = ((r - s) % P + P) % P;
        double pairs = 0;
        for (int qs : layout.segments_of(r))
          for (int ks : layout.segments_of(src)) pairs += visible_pairs(layout.segments[qs], layout.segments[ks]);
        step_compute = std::max(step_compute, pairs * attention_pair_flops(c) / dev.attention_flops);
        if (s + 1 < P) {
          const double bytes = static_cast<double>(layout.tokens_of(((r - s - 1) % P + P) % P)) * kv_row;
          next_transfer = std::max(next_transfer, message_s(link, bytes));
          next_bytes = std::max(next_bytes, bytes);
        }
      }
      ring.compute_s += attn * step_compute;
      ring.comm_s += attn * next_transfer;
      ring.exposed_comm_s += attn * std::max(0.0, next_transfer - step_compute);
      ring.bytes_per_rank += attn * next_bytes;
    }
    add(ring);
  }

  for (const auto& p : out.phases) {
    out.total_s += p.total();
    out.exposed_comm_s += p.exposed_comm_s;
  }
  return out;
}

DeviceRates measured_rates(const std::string& path, const std::map<std::string, std::pair<double, double>>& work) {
  DeviceRates d;
  d.name = path;
  d.source = "measured: bench_ops lines in " + path;
  auto rate = [&](const char* kind) {
    auto it = work.find(kind);
    if (it == work.end() || it->second.second <= 0)
      throw Error(path + " has no bench_ops measurement of " + kind +
                  " (expected {\"bench\": \"op\", ...} lines from `bench_ops --preset ...`)");
    return it->second.first / it->second.second;
  };
  d.gemm_flops = rate("gemm");
  d.attention_flops = rate("attention");
  d.ssd_flops = rate("ssd");
  d.memory_bytes = rate("memory");
  return d;
}

}  // namespace

PerfPrediction predict_prefill(const ModelConfig& c, const PerfQuery& q, const DeviceRates& dev, const LinkRates& link) {
  PerfPrediction out = predict(c, q, dev, link);
  PerfQuery one = q;
  one.ranks = 1;
  one.ranks_per_device = 1;
  out.single_device_s = predict(c, one, dev, link).total_s;
  const double devices = std::ceil(static_cast<double>(q.ranks) / std::min(q.ranks, q.ranks_per_device));
  out.parallel_efficiency = out.single_device_s / (devices * out.total_s);
  return out;
}

DeviceRates builtin_device(const std::string& name) {
  DeviceRates d;
  d.name = name;
  if (name == "h200") {
    // Engine v2 (bf16 tensor cores) as the v2 issue targets it, NOT measured
    // yet: cuBLAS bf16 GEMMs at 61% of the 989 TFLOP/s dense peak, a
    // FlashAttention-2-class mma.sync attention kernel at 35%, the SSD at 10%
    // (its chunk GEMMs are small), pointwise ops at 75% of 4.8 TB/s.
    d.source = "assumed (engine v2 targets, not yet measured on a GPU)";
    d.gemm_flops = 600e12;
    d.attention_flops = 350e12;
    d.ssd_flops = 100e12;
    d.memory_bytes = 3.6e12;
  } else if (name == "h200-v1") {
    // The first H200 run (commit 6fde06f, fp32 SIMT attention and SSD): attention
    // 25-27 TFLOP/s and the SSD 6.4-7.1 per layer at 4K-128K; at 4K, 84 ms of the
    // 193 ms prefill was neither (GEMMs + pointwise): 360 TFLOP/s for the GEMMs
    // once the pointwise ops are charged at 75% of the HBM bandwidth.
    d.source = "derived from the first H200 run (engine v1, commit 6fde06f)";
    d.gemm_flops = 360e12;
    d.attention_flops = 27e12;
    d.ssd_flops = 7e12;
    d.memory_bytes = 3.6e12;
  } else {
    throw Error("unknown device \"" + name + "\" for the performance model (known: h200, h200-v1; or --calibration FILE)");
  }
  return d;
}

std::vector<std::string> builtin_device_names() { return {"h200", "h200-v1"}; }

LinkRates builtin_link(const std::string& name) {
  LinkRates l;
  l.name = name;
  if (name == "nvlink") {
    // NVLink 4 on H200 SXM: 900 GB/s per GPU, both directions together.
    l.source = "assumed: NVLink 4, 450 GB/s each way per GPU, 3 us per message";
    l.bytes_per_s = 450e9;
    l.latency_s = 3e-6;
  } else if (name == "ib") {
    // One 400 Gb/s NDR NIC per GPU (GPUDirect RDMA).
    l.source = "assumed: InfiniBand NDR, 400 Gb/s = 50 GB/s each way per GPU, 5 us per message";
    l.bytes_per_s = 50e9;
    l.latency_s = 5e-6;
  } else {
    throw Error("unknown link \"" + name + "\" for the performance model (known: nvlink, ib)");
  }
  return l;
}

std::vector<std::string> builtin_link_names() { return {"nvlink", "ib"}; }

DeviceRates device_rates_from_bench_ops(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot read the calibration file " + path);
  // kind -> (work, seconds); work is FLOPs for the matrix ops, bytes for the rest.
  std::map<std::string, std::pair<double, double>> work;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] != '{') continue;  // bench_ops also logs plain text
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || j.value("bench", "") != "op" || !j.contains("ms")) continue;
    const std::string op = j.value("op", "");
    const double s = j.value("ms", 0.0) / 1e3, tflops = j.value("tflops", 0.0), gbs = j.value("gbs", 0.0);
    if (s <= 0) continue;
    std::string kind;
    if (op.rfind("gemm", 0) == 0 || op.rfind("linear", 0) == 0) kind = "gemm";
    else if (op == "attention_block") kind = "attention";
    else if (op == "ssd_scan") kind = "ssd";
    else if (op == "sample" || op == "ssd_step") continue;  // decode only: not on the prefill's path
    else if (j.value("bound", "") == "memory bandwidth") kind = "memory";
    else continue;
    auto& w = work[kind];
    w.first += (kind == "memory" ? gbs * 1e9 : tflops * 1e12) * s;
    w.second += s;
  }
  return measured_rates(path, work);
}

}  // namespace ringscan
