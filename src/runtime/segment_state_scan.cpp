// The Mamba state scan over segments (DESIGN.md §4, step 3) for any engine:
// incoming state of segment k = a_{k-1} * incoming_{k-1} + S_{k-1}, as an
// exclusive scan per run of segments (comm/communicator.h), each run starting
// from the state the previous run ended with.
#include "runtime/segment_exchange.h"

namespace ringscan {

SegmentStates scan_segment_states(comm::Communicator& comm, const SequenceLayout& layout,
                                  const std::vector<int>& my_segments, const std::vector<std::vector<float>>& decay,
                                  const std::vector<std::vector<float>>& local_state, int64_t heads,
                                  size_t state_elems, const std::string& label) {
  const size_t np = my_segments.size();
  SegmentStates out;
  out.incoming.assign(np, std::vector<float>(heads * state_elems, 0.f));
  std::vector<float> carry_a, carry_S;
  for (const auto& run : layout.scan_runs()) {
    std::vector<int> order;
    for (int s : run) order.push_back(layout.segments[s].owner);
    int mine = -1;
    for (size_t i = 0; i < np; ++i)
      for (int s : run)
        if (my_segments[i] == s) mine = static_cast<int>(i);
    comm::StateScanArgs a;
    a.n_heads = static_cast<int>(heads);
    a.state_elems = state_elems;
    std::vector<float> idle_decay(heads, 1.f), idle_state(heads * state_elems, 0.f), idle_out(heads * state_elems);
    a.decay = mine >= 0 ? decay[mine].data() : idle_decay.data();
    a.state = mine >= 0 ? local_state[mine].data() : idle_state.data();
    a.prefix_state = mine >= 0 ? out.incoming[mine].data() : idle_out.data();
    if (!carry_a.empty() && mine >= 0 && my_segments[mine] == run.front()) {
      a.carry_decay = carry_a.data();
      a.carry_state = carry_S.data();
    }
    {
      auto _ = comm.counter_scope(label);
      comm.exclusive_state_scan(order, a);
    }
    // The next run continues from this run's last segment, which its owner
    // (also the owner of the next run's first segment) completes locally.
    carry_a.clear();
    carry_S.clear();
    for (size_t i = 0; i < np; ++i) {
      if (my_segments[i] != run.back()) continue;
      // (a, a*H + S) is the inclusive result: the true state after the run.
      carry_a.assign(heads, 1.f);  // the absolute state needs no further decay bookkeeping
      carry_S = local_state[i];
      for (int64_t h = 0; h < heads; ++h)
        for (size_t e = 0; e < state_elems; ++e)
          carry_S[h * state_elems + e] += decay[i][h] * out.incoming[i][h * state_elems + e];
    }
  }
  // After the last run, carry_S on the last segment's owner is the state after the whole sequence.
  const int last_segment = static_cast<int>(layout.segments.size()) - 1;
  for (size_t i = 0; i < np; ++i)
    if (my_segments[i] == last_segment) out.final_state = carry_S;
  return out;
}

}  // namespace ringscan
