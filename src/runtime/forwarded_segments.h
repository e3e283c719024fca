// This rank's segments after a sequence-parallel forward (Engine::forward_sp),
// with their final hidden states on whichever backend ran it.
#pragma once
#include <cstddef>
#include <memory>

#include "runtime/final_hidden.h"
#include "runtime/layout.h"
#include "runtime/sequence_parallel.h"
#include "runtime/sharded_decode_engine.h"

namespace ringscan {

class ForwardedSegments {
 public:
  virtual ~ForwardedSegments() = default;
  // This rank's segments, in layout.segments_of(rank) order.
  virtual size_t size() const = 0;
  virtual const Segment& segment(size_t i) const = 0;
  // Segment i's final hidden states, [segment(i).len, hidden].
  virtual const FinalHidden& hidden(size_t i) const = 0;
  // What a ShardedDecoder continues the sequence from (runtime/decode.h),
  // as host memory (fp32), moved out (the GPU engine downloads it); only after
  // a forward_sp that kept it (an Error says so otherwise). One of this and
  // take_decode_sequence(), once.
  virtual SequenceParallelDecodeState take_decode_state() = 0;
  // The same as the engine keeps it (host or device), for a ShardedDecoder on
  // Engine::sharded_decode_engine(); only after a forward_sp that kept it.
  virtual std::unique_ptr<ShardedDecodeEngine::Sequence> take_decode_sequence() = 0;
};

}  // namespace ringscan
