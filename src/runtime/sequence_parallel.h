// Sequence-parallel forward of one sequence over the ranks of a communicator
// (DESIGN.md §4). Each rank holds only its segments' activations; between
// layers only conv halos (Mamba), segment states (Mamba state scan) and K/V
// blocks (ring attention) cross between ranks.
#pragma once
#include <cstdint>
#include <vector>

#include "comm/communicator.h"
#include "model/model.h"
#include "runtime/layout.h"
#include "runtime/segment_exchange.h"

namespace ringscan {

// One of this rank's segments and its residual stream.
struct Piece {
  int segment = 0;  // index into layout.segments
  Segment seg;
  std::vector<int32_t> ids;
  std::vector<float> hidden;  // [seg.len, hidden_size]
};

// What decoding a sequence further needs after its sequence-parallel prefill
// (DESIGN.md §4, decode), as this rank holds it:
//  - every rank: per attention layer, its shard of the KV cache: the K rows
//    (rotated when RoPE is on) and V rows of its own segments, in `state`'s
//    LayerCache k / v / kv_rows. Decode attends a new query to all of them,
//    so their positions are not kept (kv_pos0 is meaningless here).
//  - the driver (the owner of the last segment, where the state scan ends):
//    per Mamba layer the true conv history (the last conv_kernel-1 pre-conv
//    rows of the sequence, zeros before position 0) and SSM state after the
//    whole sequence; and the final hidden state (after norm_f) of the last
//    position, from which the first new token is drawn.
struct SequenceParallelDecodeState {
  int driver = 0;
  int64_t length = 0;
  InferenceState state;            // state.position = length
  std::vector<float> last_hidden;  // [hidden_size], on the driver only
};

// Called after each layer with one of this rank's pieces (tests compare
// layers against a single-rank run with it).
using PieceObserver = std::function<void(int layer, const Piece& piece)>;

class SequenceParallelForward {
 public:
  SequenceParallelForward(Model& model, comm::Communicator& comm, SequenceLayout layout);

  // ids_of_segment(i) gives the ids of segment i for each of this rank's segments
  // (a rank never needs the others' tokens). Returns this rank's pieces with the
  // final hidden states (after norm_f).
  std::vector<Piece> run(const std::function<std::vector<int32_t>(const Segment&)>& ids_of_segment,
                         const PieceObserver& observer = nullptr);

  const SequenceLayout& layout() const { return layout_; }

  // Before run(): also keep what decoding needs (off by default: it costs a
  // copy of this rank's K/V rows and a hidden row sent to the driver).
  void set_keep_decode_state(bool keep) { keep_decode_ = keep; }
  // After run() with keep on: this rank's part, moved out.
  SequenceParallelDecodeState take_decode_state();

 private:
  // The layer's RMSNorm of a piece's residual stream: every mixer's input.
  std::vector<float> normed_input(int layer, const Piece& p) const;
  void mamba_layer(int layer, std::vector<Piece>& pieces);
  void attention_layer(int layer, std::vector<Piece>& pieces);
  void mlp_layer(int layer, std::vector<Piece>& pieces);
  void hand_last_hidden_to_driver(const std::vector<Piece>& pieces);

  Model& model_;
  comm::Communicator& comm_;
  SequenceLayout layout_;
  std::vector<Workspace> ws_;  // one per piece: a layer's phases keep their buffers until the exchange is done
  bool keep_decode_ = false;
  SequenceParallelDecodeState decode_;
};

// exp(A[h] * sum_t dt[t, h]) for dt [n, heads]: a segment's total decay per
// head, what the state scan composes (summed in double).
std::vector<float> segment_decay(const float* dt, int64_t n, const std::vector<float>& A);

}  // namespace ringscan
