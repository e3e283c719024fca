// A loaded Nemotron-H model and its single-sequence forward on the CPU.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "model/config.h"
#include "model/inference_state.h"
#include "model/layers.h"
#include "model/safetensors.h"
#include "model/weights.h"

namespace ringscan {

// Called after each layer with the residual stream of the block just run:
// hidden [n, hidden_size] at positions pos0.. (tests compare layers with it).
using LayerObserver = std::function<void(int layer, int64_t pos0, const float* hidden, int64_t n)>;

class Model {
 public:
  // Reads config.json, maps the safetensors and checks every tensor. Tensors the
  // model does not use are reported on stderr unless quiet.
  static std::unique_ptr<Model> load(const std::string& dir, bool quiet = false);
  // A model over tensors already in memory (model/random_checkpoint.h's
  // random_checkpoint_in_memory), checked as load() checks files.
  static std::unique_ptr<Model> from_checkpoint(const ModelConfig& config, Checkpoint checkpoint);

  const ModelConfig& config() const { return cfg_; }
  const ModelWeights& weights() const { return w_; }
  const Checkpoint& checkpoint() const { return ckpt_; }
  const std::string& dir() const { return dir_; }

  InferenceState new_state() const;

  // Runs ids[0..n) after whatever `st` holds, updating it; writes the final
  // hidden states (after norm_f) to hidden_out [n, hidden_size]. Long inputs run
  // in blocks of block_tokens() tokens, carried through `st` exactly.
  void forward(const int32_t* ids, int64_t n, InferenceState& st, float* hidden_out,
               const LayerObserver& observer = nullptr);

  // logits [n, vocab] = lm_head(hidden).
  void logits(const float* hidden, int64_t n, float* out) const;

  // Embedding rows for ids; a bad id is an Error naming its position.
  void embed(const int32_t* ids, int64_t n, float* out) const;

  // One block (norm, mixer, residual add) of layer `i` on h [n, hidden], in place.
  // Mamba and attention continue from `cache`.
  void layer_forward(int i, float* h, int64_t n, int64_t pos0, LayerCache& cache);

  // Attention of one decode step (see decode_step): q [n, heads*head_dim] and
  // k, v [n, kv_heads*head_dim] of the n new tokens (rotated when RoPE is on),
  // contiguous; writes y [n, heads*head_dim], each token's attention over all
  // keys before it and its own. Sharded decode (runtime/decode.h) supplies one.
  using DecodeAttention =
      std::function<void(int layer, int64_t n, const float* q, const float* k, const float* v, float* y)>;

  // One new token for each of n sequences at once (batched decode, in
  // decode_step.cpp): ids[i] continues *states[i] at its position, updating
  // it; hidden_out [n, hidden_size] receives the final hidden states (after
  // norm_f). Norms, projections and MLPs run on the n rows as one matrix; the
  // conv (from each sequence's history), the SSM step (kernels/ssd_step.h, on
  // each sequence's state in place) and attention run on each sequence's own
  // state. Without `attend`, sequence i attends over its own KV cache in
  // states[i] (appending the new K/V). Equals forward() of each sequence
  // alone, token by token, to fp32 round-off.
  void decode_step(const int32_t* ids, int64_t n, InferenceState* const* states, float* hidden_out,
                   const DecodeAttention& attend = nullptr);

  int64_t block_tokens() const { return block_tokens_; }
  void set_block_tokens(int64_t n) { block_tokens_ = n; }

 private:
  std::string dir_;
  ModelConfig cfg_;
  Checkpoint ckpt_;
  ModelWeights w_;
  Workspace ws_;
  int64_t block_tokens_ = 2048;
};

}  // namespace ringscan
