// A performance model of one document's sequence-parallel prefill: N tokens
// over P ranks, per phase (projections, conv + halo, SSD scan, state scan,
// ring attention, MLP, lm_head, pointwise ops), the time on the critical path
// and the communication that is not hidden behind compute. It plans past the
// machines we have (e.g. 1M tokens on 8 H200) from rates measured on the
// ones we do have: per-op rates from `bench_ops` output (the same op cases as
// tests/backend_ops, at the model's shapes) and link rates (docs/performance.md
// "Performance model" states every assumption).
//
// What it models (docs/sequence-parallel.md's algorithm):
// - per-token work (projections, MLP, lm_head, pointwise) on N/P tokens;
// - the SSD scan on each rank's tokens, then the O(log P) state scan
//   (latency + message size per round; hidden behind the output stages of the
//   last SSD pass of each rank's last segment, exposed past them) and the
//   correction of each segment's outputs by its incoming state;
// - ring attention: P steps; step s computes the visible part of one K/V
//   block while the next block travels (hidden when the link is fast enough);
//   a step lasts as long as its busiest rank (contiguous layouts leave early
//   ranks idle, zigzag balances them);
// - ranks sharing one device each get 1/K of its rates (K ranks per device).
// Not modelled: kernel launch gaps, GEMM efficiency changing with the row
// count, memory limits (see `info`'s memory plan), decode.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "runtime/layout.h"

namespace ringscan {

// Sustained rates of one device, as the engine's ops reach them.
struct DeviceRates {
  std::string name;
  std::string source;            // where the numbers come from (measured or assumed, and where)
  double gemm_flops = 0;         // FLOP/s of the projection GEMMs (and lm_head)
  double attention_flops = 0;    // FLOP/s of the attention kernel over visible pairs
  double ssd_flops = 0;          // FLOP/s of the SSD chunked scan
  double memory_bytes = 0;       // B/s of the memory-bound ops (norms, conv, activations, log-softmax)
};

struct LinkRates {
  std::string name;
  std::string source;
  double bytes_per_s = 0;  // one direction, per rank (a ring sends and receives at once)
  double latency_s = 0;    // per message
};

struct PhaseTime {
  std::string phase;
  double compute_s = 0;        // on the critical path (the slowest rank)
  double comm_s = 0;           // time the link is busy for this phase
  double exposed_comm_s = 0;   // part of comm_s not hidden behind compute
  double bytes_per_rank = 0;   // sent by the busiest rank
  double total() const { return compute_s + exposed_comm_s; }
};

struct PerfPrediction {
  std::vector<PhaseTime> phases;
  double total_s = 0;
  double single_device_s = 0;  // the same document on one device (whether or not it fits)
  // single_device_s / (P * total_s) where the P ranks have P devices; with
  // ranks sharing devices, against the devices they have.
  double parallel_efficiency = 0;
  double exposed_comm_s = 0;
};

struct PerfQuery {
  int64_t tokens = 0;
  int ranks = 1;
  int ranks_per_device = 1;  // >1: ranks share a device (its rates are split between them)
  LayoutKind layout = LayoutKind::Zigzag;
  int kv_bytes_per_elem = 4;  // the K/V blocks on the ring: 4 (fp32) or 2 (bf16)
};

PerfPrediction predict_prefill(const ModelConfig& c, const PerfQuery& q, const DeviceRates& dev,
                               const LinkRates& link);

// Built-in devices: "h200" (engine v2, assumed rates: see the source string),
// "h200-v1" (derived from the first H200 run, engine v1). Throws for others.
DeviceRates builtin_device(const std::string& name);
std::vector<std::string> builtin_device_names();
// Built-in links: "nvlink" (H200 NVLink 4), "ib" (one 400 Gb/s NIC per GPU).
LinkRates builtin_link(const std::string& name);
std::vector<std::string> builtin_link_names();

// Rates from `bench_ops` JSON lines ({"bench": "op", "op": ..., "ms": ...,
// "tflops": ..., "gbs": ...}): GEMMs from the gemm/linear ops, attention from
// attention_block, the SSD from ssd_scan, memory from the memory-bound ops
// (each a total of work over total time). Throws with the file and what is
// missing when a kind has no measurement.
DeviceRates device_rates_from_bench_ops(const std::string& path);

}  // namespace ringscan
