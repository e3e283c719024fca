// The ring of K/V blocks (DESIGN.md §4, attention) for any engine: P steps;
// in each, the block held is folded while the next one is in flight.
#include "runtime/segment_exchange.h"

#include <algorithm>

namespace ringscan {

void ring_pass(comm::Communicator& comm, const SequenceLayout& layout, const float* own, float* a, float* b,
               int64_t kvd, const std::string& label, const std::function<void(int src, const float* block)>& fold,
               const std::function<void(comm::Request&)>& wait) {
  const int P = comm.size(), me = comm.rank();
  const float* cur = own;
  int src = me;  // rank whose block `cur` is
  for (int step = 0; step < P; ++step) {
    comm::Request inflight;
    const int from = (src - 1 + P) % P;  // the block arriving next
    float* next = step % 2 == 0 ? a : b;  // never `cur`: that one is a, b or own in turn
    if (step + 1 < P) {
      auto _ = comm.counter_scope(label);
      inflight = comm.isendrecv(cur, 2 * layout.tokens_of(src) * kvd, (me + 1) % P, next,
                                2 * layout.tokens_of(from) * kvd, (me - 1 + P) % P);
    }
    fold(src, cur);
    if (step + 1 < P) {
      auto _ = comm.counter_scope(label);
      if (wait) wait(inflight);
      inflight.wait();  // a no-op when `wait` completed it
      cur = next;
      src = from;
    }
  }
}

void ring_pass(comm::Communicator& comm, const SequenceLayout& layout, const std::vector<float>& own, int64_t kvd,
               const std::string& label, const std::function<void(int src, const float* block)>& fold) {
  int64_t widest = 0;
  for (int r = 0; r < comm.size(); ++r) widest = std::max(widest, layout.tokens_of(r));
  std::vector<float> a(2 * widest * kvd), b(a.size());
  ring_pass(comm, layout, own.data(), a.data(), b.data(), kvd, label, fold);
}

void for_each_visible_pair(const SequenceLayout& layout, int src, const std::vector<int>& my_segments,
                           const std::function<void(size_t p, const Segment& key, int64_t key_row)>& fn) {
  int64_t kr = 0;
  for (int ks : layout.segments_of(src)) {
    const Segment& kseg = layout.segments[ks];
    for (size_t p = 0; p < my_segments.size(); ++p) {
      const Segment& q = layout.segments[my_segments[p]];
      // Keys wholly after the query segment's last position are never visible.
      if (q.len == 0 || kseg.len == 0 || kseg.begin > q.end() - 1) continue;
      fn(p, kseg, kr);
    }
    kr += kseg.len;
  }
}

}  // namespace ringscan
