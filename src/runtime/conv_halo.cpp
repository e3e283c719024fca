// Conv halo exchange: each segment needs the last K-1 pre-conv rows before it.
// A segment at least K-1 long sends its own tail to the next segment's owner
// at once; a shorter one must first receive its own halo and forward the last
// K-1 rows of [halo; its rows]. Ranks handle their segments in sequence order,
// so a chain of short segments resolves front to back without deadlock.
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
  std::vector<int> piece_of(nseg, -1);
  for (size_t p = 0; p < my_segments.size(); ++p) piece_of[my_segments[p]] = static_cast<int>(p);
  // outgoing[p] = the last k rows of [halo[p] (k rows) ; tail[p] (m rows)].
  auto compose = [&](size_t p) {
    const int64_t m = std::min<int64_t>(layout.segments[my_segments[p]].len, k);
    const int64_t from_halo = k - m;
    if (from_halo > 0) ops.copy_rows(buf.outgoing[p], buf.halo[p] + m * channels, channels, from_halo, channels);
    if (m > 0) ops.copy_rows(buf.outgoing[p] + from_halo * channels, buf.tail[p], buf.tail_pitch, m, channels);
  };
  std::vector<comm::Request> sends;
  auto deliver = [&](size_t p) {
    const int next = my_segments[p] + 1;
    if (next >= nseg) return;
    const int to = layout.segments[next].owner;
    if (to != me) sends.push_back(comm.isend(buf.outgoing[p], k * channels, to));
  };
  // Step 1: long segments send their own tails immediately.
  for (size_t p = 0; p < my_segments.size(); ++p)
    if (layout.segments[my_segments[p]].len >= k) {
      compose(p);
      deliver(p);
    }
  // Step 2: in sequence order, receive each halo; short segments forward theirs.
  for (size_t p = 0; p < my_segments.size(); ++p) {
    const int seg = my_segments[p];
    if (seg == 0) {
      ops.zero(buf.halo[p], k * channels);
    } else if (layout.segments[seg - 1].owner == me) {  // a local hand-over
      ops.copy_rows(buf.halo[p], buf.outgoing[piece_of[seg - 1]], channels, k, channels);
    } else {
      comm.recv(buf.halo[p], k * channels, layout.segments[seg - 1].owner);
    }
    if (layout.segments[seg].len < k) {
      compose(p);
      deliver(p);
    }
  }
  comm::wait_all(sends);
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
