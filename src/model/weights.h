// The model's tensors as views into the mmapped checkpoint, checked against
// the config: every expected tensor present with its expected shape; others
// reported. Names follow HF transformers' modeling_nemotron_h.py.
#pragma once
#include <string>
#include <vector>

#include "model/config.h"
#include "model/safetensors.h"

namespace ringscan {

struct MambaWeights {
  WeightView in_proj;   // [in_proj_dim, hidden]  -> z | xBC | dt
  WeightView conv_w;    // [conv_dim, K]  (HF [conv_dim, 1, K])
  WeightView conv_b;    // [1, conv_dim] or empty
  WeightView dt_bias;   // [1, heads]
  WeightView A_log;     // [1, heads]
  WeightView D;         // [1, heads]
  WeightView norm;      // [1, d_inner]
  WeightView out_proj;  // [hidden, d_inner]
};

struct AttentionWeights {
  WeightView q, k, v, o;  // q [H*hd, hidden], k/v [Hkv*hd, hidden], o [hidden, H*hd]
};

struct MlpWeights {
  WeightView gate;  // SwiGLU only: [inter, hidden]
  WeightView up;    // [inter, hidden]
  WeightView down;  // [hidden, inter]
};

struct LayerWeights {
  LayerKind kind;
  WeightView norm;  // [1, hidden]
  MambaWeights mamba;
  AttentionWeights attn;
  MlpWeights mlp;
};

struct ModelWeights {
  WeightView embeddings;  // [vocab, hidden]
  std::vector<LayerWeights> layers;
  WeightView norm_f;   // [1, hidden]
  WeightView lm_head;  // [vocab, hidden] (== embeddings when tied)
  std::vector<std::string> unexpected;  // tensors in the checkpoint the model does not use
};

// One expected tensor: name and shape as the checkpoint must store it.
struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
};
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& c);

ModelWeights bind_weights(const ModelConfig& c, const Checkpoint& ckpt);

}  // namespace ringscan
