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
