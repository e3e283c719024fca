// Conv halo exchange: each segment needs the last K-1 pre-conv rows before it.
// A segment at least K-1 long sends its own tail to the next segment's owner
// at once; a shorter one must first receive its own halo and forward the last
// K-1 rows of [halo; its rows]. Ranks handle their segments in sequence order,
// so a chain of short segments resolves front to back without deadlock.
#include <cstring>

#include "runtime/segment_exchange.h"

namespace ringscan {

namespace {
// Last `k` rows of [prev (k rows) ; tail (m rows)], rows of `channels`.
std::vector<float> last_rows(const std::vector<float>& prev, const std::vector<float>& tail, int64_t m,
                             int64_t channels, int64_t k) {
  std::vector<float> out(k * channels);
  for (int64_t r = 0; r < k; ++r) {
    const int64_t src = m - k + r;  // row of `tail`; negative: row k + src of prev
    const float* p = src >= 0 ? tail.data() + src * channels : prev.data() + (k + src) * channels;
    std::memcpy(out.data() + r * channels, p, channels * sizeof(float));
  }
  return out;
}
}  // namespace

std::string traffic_label(int layer, const char* kind) { return "layer" + std::to_string(layer) + "." + kind; }

std::vector<std::vector<float>> exchange_conv_halo(comm::Communicator& comm, const SequenceLayout& layout,
                                                   const std::vector<int>& my_segments,
                                                   const std::vector<std::vector<float>>& tails, int64_t channels,
                                                   int64_t halo_rows, const std::string& label) {
  const int me = comm.rank();
  const int nseg = static_cast<int>(layout.segments.size());
  const int64_t k = halo_rows;
  std::vector<std::vector<float>> halo(my_segments.size(), std::vector<float>(k * channels, 0.f));
  if (k == 0) return halo;
  auto _ = comm.counter_scope(label);
  auto tail_len = [&](size_t p) { return std::min<int64_t>(layout.segments[my_segments[p]].len, k); };

  // Outgoing tails by segment index; a send to ourselves is a local hand-over.
  std::vector<std::vector<float>> outgoing(nseg);
  std::vector<comm::Request> sends;
  auto deliver = [&](int seg) {
    int next = seg + 1;
    if (next >= nseg) return;
    int to = layout.segments[next].owner;
    if (to != me) sends.push_back(comm.isend(outgoing[seg].data(), outgoing[seg].size(), to));
  };
  // Step 1: long segments send their own tails immediately.
  for (size_t p = 0; p < my_segments.size(); ++p) {
    int seg = my_segments[p];
    if (layout.segments[seg].len >= k) {
      outgoing[seg] = last_rows({}, tails[p], tail_len(p), channels, k);
      deliver(seg);
    }
  }
  // Step 2: in sequence order, receive each halo; short segments forward theirs.
  for (size_t p = 0; p < my_segments.size(); ++p) {
    int seg = my_segments[p];
    if (seg > 0) {
      int from = layout.segments[seg - 1].owner;
      if (from == me) halo[p] = outgoing[seg - 1];
      else comm.recv(halo[p].data(), halo[p].size(), from);
    }
    if (layout.segments[seg].len < k) {
      outgoing[seg] = last_rows(halo[p], tails[p], tail_len(p), channels, k);
      deliver(seg);
    }
  }
  comm::wait_all(sends);
  return halo;
}

}  // namespace ringscan
