// The three exchanges of a sequence-parallel layer (DESIGN.md §4), on host
// buffers and independent of the engine that computes between them: the CPU
// runner (sequence_parallel.h) and the GPU runner (device_sequence_parallel.h,
// which stages through host memory) both call them, so both send the same
// bytes in the same order.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "runtime/layout.h"

namespace ringscan {

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
// blocks alternately, so the one being folded is never written.
void ring_pass(comm::Communicator& comm, const SequenceLayout& layout, const float* own, float* a, float* b,
               int64_t kvd, const std::string& label, const std::function<void(int src, const float* block)>& fold);
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
