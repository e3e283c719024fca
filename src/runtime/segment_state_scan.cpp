// The Mamba state scan over segments (DESIGN.md §4, step 3) for any engine:
// incoming state of segment k = a_{k-1} * incoming_{k-1} + S_{k-1}, as an
// exclusive scan per run of segments (comm/communicator.h), each run starting
// from the state the previous run ended with.
#include "runtime/segment_exchange.h"

namespace ringscan {

void scan_segment_states(comm::Communicator& comm, const SequenceLayout& layout, const std::vector<int>& my_segments,
                         const SegmentStateBuffers& buf, int64_t heads, size_t state_elems, const std::string& label) {
  const size_t np = my_segments.size();
  const float* carry = nullptr;  // the state after the previous run, on the owner of its last segment
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
    a.decay = mine >= 0 ? buf.decay[mine] : buf.ones;
    a.state = mine >= 0 ? buf.state[mine] : buf.zeros;
    a.prefix_state = mine >= 0 ? buf.incoming[mine] : buf.idle_out;
    a.next_state = mine >= 0 ? buf.after[mine] : nullptr;
    a.inputs_ready = buf.inputs_ready;
    // The next run continues from this run's last segment, whose owner also
    // owns the next run's first segment: the true state after it, with no
    // further decay to track (carry decay 1).
    if (carry && mine >= 0 && my_segments[mine] == run.front()) {
      a.carry_decay = buf.ones;
      a.carry_state = carry;
    }
    {
      auto _ = comm.counter_scope(label);
      comm.exclusive_state_scan(order, a);
    }
    carry = nullptr;
    for (size_t i = 0; i < np; ++i)
      if (my_segments[i] == run.back()) carry = buf.after[i];
  }
}

SegmentStates scan_segment_states(comm::Communicator& comm, const SequenceLayout& layout,
                                  const std::vector<int>& my_segments, const std::vector<std::vector<float>>& decay,
                                  const std::vector<std::vector<float>>& local_state, int64_t heads,
                                  size_t state_elems, const std::string& label) {
  const size_t np = my_segments.size();
  SegmentStates out;
  out.incoming.assign(np, std::vector<float>(heads * state_elems, 0.f));
  std::vector<std::vector<float>> after(np, std::vector<float>(heads * state_elems));
  std::vector<float> ones(heads, 1.f), zeros(heads * state_elems, 0.f), idle(heads * state_elems);
  SegmentStateBuffers buf;
  for (size_t i = 0; i < np; ++i) {
    buf.decay.push_back(decay[i].data());
    buf.state.push_back(local_state[i].data());
    buf.incoming.push_back(out.incoming[i].data());
    buf.after.push_back(after[i].data());
  }
  buf.ones = ones.data();
  buf.zeros = zeros.data();
  buf.idle_out = idle.data();
  scan_segment_states(comm, layout, my_segments, buf, heads, state_elems, label);
  // The state after the whole sequence, on the last segment's owner.
  const int last_segment = static_cast<int>(layout.segments.size()) - 1;
  for (size_t i = 0; i < np; ++i)
    if (my_segments[i] == last_segment) out.final_state = after[i];
  return out;
}

}  // namespace ringscan
