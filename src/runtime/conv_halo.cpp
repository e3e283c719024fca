// Conv halo exchange: each segment needs the last K-1 pre-conv rows before it.
// A segment at least K-1 long (or the first) can send its own tail at once; a
// shorter one must first receive its own halo and forward the last K-1 rows
// of [halo; its rows]. So the exchange runs in rounds that every rank derives
// from the layout alone: segment s sends in round ready(s) = 0 if it is long
// or the first, else ready(s-1) + 1 (one round for any layout whose segments
// are all at least K-1 long). Each round's sends and receives are posted
// together (Communicator::post_transfers: one NCCL group), so no rank blocks
// in a send its peer has not yet matched.
#include <algorithm>
#include <cstring>

#include "runtime/segment_exchange.h"

namespace ringscan {

std::string traffic_label(int layer, const char* kind) { return "layer" + std::to_string(layer) + "." + kind; }

SpaceOps host_space_ops() {
  SpaceOps ops;
  ops.copy_rows = [](float* dst, const float* src, int64_t pitch, int64_t rows, int64_t channels) {
    for (int64_t r = 0; r < rows; ++r) std::memcpy(dst + r * channels, src + r * pitch, channels * sizeof(float));
  };
  ops.zero = [](float* dst, int64_t n) { std::memset(dst, 0, n * sizeof(float)); };
  return ops;
}

void exchange_conv_halo(comm::Communicator& comm, const SequenceLayout& layout, const std::vector<int>& my_segments,
                        const HaloBuffers& buf, int64_t channels, int64_t halo_rows, const std::string& label,
                        const SpaceOps& ops) {
  const int me = comm.rank();
  const int nseg = static_cast<int>(layout.segments.size());
  const int64_t k = halo_rows;
  if (k == 0) return;
  auto _ = comm.counter_scope(label);
  std::vector<int> piece_of(nseg, -1), ready(nseg, 0);
  for (size_t p = 0; p < my_segments.size(); ++p) piece_of[my_segments[p]] = static_cast<int>(p);
  int rounds = 1;
  for (int s = 1; s < nseg; ++s) {
    if (layout.segments[s].len < k) ready[s] = ready[s - 1] + 1;
    rounds = std::max(rounds, ready[s] + 1);
  }
  auto owner = [&](int s) { return layout.segments[s].owner; };
  for (size_t p = 0; p < my_segments.size(); ++p)
    if (my_segments[p] == 0) ops.zero(buf.halo[p], k * channels);
  for (int t = 0; t < rounds; ++t) {
    std::vector<comm::Communicator::Transfer> transfers;
    // In sequence order: segments sending this round compose their outgoing
    // rows = the last k of [halo (k rows) ; tail (m rows)]; a local successor
    // takes them at once (a short one may then send in a later round).
    for (size_t p = 0; p < my_segments.size(); ++p) {
      const int s = my_segments[p];
      if (ready[s] != t || s + 1 >= nseg) continue;
      const int64_t m = std::min<int64_t>(layout.segments[s].len, k), from_halo = k - m;
      if (from_halo > 0) ops.copy_rows(buf.outgoing[p], buf.halo[p] + m * channels, channels, from_halo, channels);
      if (m > 0) ops.copy_rows(buf.outgoing[p] + from_halo * channels, buf.tail[p], buf.tail_pitch, m, channels);
      if (owner(s + 1) == me)
        ops.copy_rows(buf.halo[piece_of[s + 1]], buf.outgoing[p], channels, k, channels);
      else
        transfers.push_back({true, buf.outgoing[p], nullptr, static_cast<size_t>(k * channels) * sizeof(float), owner(s + 1)});
    }
    for (size_t p = 0; p < my_segments.size(); ++p) {
      const int s = my_segments[p];
      if (s > 0 && ready[s - 1] == t && owner(s - 1) != me)
        transfers.push_back({false, nullptr, buf.halo[p], static_cast<size_t>(k * channels) * sizeof(float), owner(s - 1)});
    }
    if (!transfers.empty()) comm.post_transfers(transfers).wait();
  }
}

std::vector<std::vector<float>> exchange_conv_halo(comm::Communicator& comm, const SequenceLayout& layout,
                                                   const std::vector<int>& my_segments,
                                                   const std::vector<std::vector<float>>& tails, int64_t channels,
                                                   int64_t halo_rows, const std::string& label) {
  const size_t np = my_segments.size();
  std::vector<std::vector<float>> halo(np, std::vector<float>(halo_rows * channels, 0.f)),
      outgoing(np, std::vector<float>(halo_rows * channels));
  HaloBuffers buf;
  buf.tail_pitch = channels;
  for (size_t p = 0; p < np; ++p) {
    buf.tail.push_back(tails[p].data());
    buf.halo.push_back(halo[p].data());
    buf.outgoing.push_back(outgoing[p].data());
  }
  exchange_conv_halo(comm, layout, my_segments, buf, channels, halo_rows, label, host_space_ops());
  return halo;
}

}  // namespace ringscan
