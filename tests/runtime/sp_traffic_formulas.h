// Bytes a rank sends in one sequence-parallel layer, from the layout alone
// (DESIGN.md §4): conv halo, state scan (comm/state_scan_schedule.h) and K/V
// ring. The CPU (test_sequence_parallel) and GPU (test_device_sp) runners'
// tests check every layer's traffic against them, for either communicator.
#pragma once
#include <cstdint>

#include "comm/state_scan_schedule.h"
#include "model/config.h"
#include "runtime/layout.h"

namespace ringscan::test {

// Bytes this rank must send in one layer, from the layout alone.
inline uint64_t expected_halo_bytes(const SequenceLayout& l, int me, const ModelConfig& c) {
  uint64_t n = 0;
  for (size_t s = 0; s + 1 < l.segments.size(); ++s)
    if (l.segments[s].owner == me && l.segments[s + 1].owner != me)
      n += static_cast<uint64_t>(c.conv_kernel - 1) * c.conv_dim() * 4;
  return n;
}

inline uint64_t expected_state_bytes(const SequenceLayout& l, int me, const ModelConfig& c) {
  const int P = l.ranks;
  const uint64_t pair = static_cast<uint64_t>(c.mamba_heads) * (1 + c.mamba_head_dim * c.ssm_state) * 4;
  uint64_t n = 0;
  for (const auto& run : l.scan_runs())
    for (size_t pos = 0; pos < run.size(); ++pos)
      if (l.segments[run[pos]].owner == me)
        for (int r = 0; r < comm::scan_schedule::rounds(P); ++r)
          if (comm::scan_schedule::sends(static_cast<int>(pos), r, P)) n += pair;
  return n;
}

inline uint64_t expected_ring_bytes(const SequenceLayout& l, int me, const ModelConfig& c) {
  const int P = l.ranks;
  uint64_t n = 0;
  for (int step = 0; step + 1 < P; ++step)
    n += static_cast<uint64_t>(l.tokens_of((me - step + P) % P)) * 2 * c.num_kv_heads * c.head_dim * 4;
  return n;
}

}  // namespace ringscan::test
