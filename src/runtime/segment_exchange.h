// The three exchanges of a sequence-parallel layer (DESIGN.md §4),
// independent of the engine that computes between them: the CPU runner
// (sequence_parallel.h) and the GPU runner (device_sequence_parallel.h) both
// call them, so both send the same bytes in the same order. Each exchange has
// a core on raw buffers in the communicator's memory space (host for MPI,
// device for NCCL), with the local copies it needs given as SpaceOps, and
// the halo and the scan also a host-vector form.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "runtime/layout.h"

namespace ringscan {

// Local copies inside the communicator's memory space (host memcpy, or
// stream-ordered device copies for a device communicator).
struct SpaceOps {
  // dst [rows, channels] contiguous <- rows of src, src_pitch floats apart.
  std::function<void(float* dst, const float* src, int64_t src_pitch, int64_t rows, int64_t channels)> copy_rows;
  std::function<void(float* dst, int64_t n)> zero;
};
SpaceOps host_space_ops();

// The conv halo's buffers, per segment of this rank (in sequence order).
struct HaloBuffers {
  std::vector<const float*> tail;  // its last min(len, K-1) pre-conv rows, tail_pitch floats apart
  int64_t tail_pitch = 0;
  std::vector<float*> halo;      // out: the K-1 rows before it [K-1, channels]
  std::vector<float*> outgoing;  // scratch [K-1, channels]: what goes to the next segment
};
void exchange_conv_halo(comm::Communicator& comm, const SequenceLayout& layout, const std::vector<int>& my_segments,
                        const HaloBuffers& buf, int64_t channels, int64_t halo_rows, const std::string& label,
                        const SpaceOps& ops);

// Conv halo: receives, for each of this rank's segments (my_segments, in
// sequence order), the K-1 pre-conv rows that precede it in the sequence
// (zeros before position 0). tails[p] holds the last min(len, K-1) pre-conv
// rows of segment my_segments[p], contiguous [rows, channels]. Segments
// shorter than K-1 forward along the chain.
std::vector<std::vector<float>> exchange_conv_halo(comm::Communicator& comm, const SequenceLayout& layout,
                                                   const std::vector<int>& my_segments,
                                                   const std::vector<std::vector<float>>& tails, int64_t channels,
                                                   int64_t halo_rows, const std::string& label);

// Mamba state scan over segments: given each of this rank's segments' local
// final state S (from a zero state, [heads * state_elems]) and total decay
// (exp(A * sum dt), [heads]), the true incoming state of each segment, run by
// run (zigzag: up the ranks, then down, carrying on), in O(log P) steps per run.
// The state scan's buffers, per segment of this rank; idle_* serve a rank with
// no segment in a run (its position still relays).
struct SegmentStateBuffers {
  std::vector<const float*> decay;  // [heads]
  std::vector<const float*> state;  // [heads * state_elems], the local final state S
  std::vector<float*> incoming;     // out: H, the true incoming state
  std::vector<float*> after;        // out: decay * H + S, the true state after it (may be `state`)
  const float* ones = nullptr;      // [heads] of 1
  const float* zeros = nullptr;     // [heads * state_elems] of 0
  float* idle_out = nullptr;        // [heads * state_elems] scratch
  void* inputs_ready = nullptr;     // device communicators: StateScanArgs::inputs_ready
};
void scan_segment_states(comm::Communicator& comm, const SequenceLayout& layout, const std::vector<int>& my_segments,
                         const SegmentStateBuffers& buf, int64_t heads, size_t state_elems, const std::string& label);

struct SegmentStates {
  std::vector<std::vector<float>> incoming;  // per my segment, [heads * state_elems]
  std::vector<float> final_state;            // the state after the sequence: on the last segment's owner only
};
SegmentStates scan_segment_states(comm::Communicator& comm, const SequenceLayout& layout,
                                  const std::vector<int>& my_segments, const std::vector<std::vector<float>>& decay,
                                  const std::vector<std::vector<float>>& local_state, int64_t heads,
                                  size_t state_elems, const std::string& label);

// Ring pass of K/V blocks: `own` is this rank's [k rows of every segment ;
// v rows of every segment] (rows: layout.tokens_of(rank), width kvd). For
// each of the P blocks (its own first), fold(src, block_of_src) runs while the
// next block is in flight. Every rank calls it together. The buffers are in
// the communicator's memory space (host for MPI, device for NCCL): `a` and
// `b`, each of 2 * max_r tokens_of(r) * kvd floats, receive the others'
// blocks alternately, so the one being folded is never written. wait (optional)
// completes a step's transfer instead of Request::wait (e.g. wait_on_stream).
void ring_pass(comm::Communicator& comm, const SequenceLayout& layout, const float* own, float* a, float* b,
               int64_t kvd, const std::string& label, const std::function<void(int src, const float* block)>& fold,
               const std::function<void(comm::Request&)>& wait = {});
// The same with host buffers it allocates.
void ring_pass(comm::Communicator& comm, const SequenceLayout& layout, const std::vector<float>& own, int64_t kvd,
               const std::string& label, const std::function<void(int src, const float* block)>& fold);

// The (query segment, key segment) pairs of one K/V block that are not wholly
// in the future: fn(piece index p (into my_segments), key segment, first row
// of that key segment within src's block).
void for_each_visible_pair(const SequenceLayout& layout, int src, const std::vector<int>& my_segments,
                           const std::function<void(size_t p, const Segment& key, int64_t key_row)>& fn);

// Traffic label of one layer's exchanges, e.g. "layer3.ring"; kind is
// "halo", "state" or "ring" (tests check each against its formula).
std::string traffic_label(int layer, const char* kind);

}  // namespace ringscan
