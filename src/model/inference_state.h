// What a sequence leaves behind for the tokens that follow it: per Mamba layer
// the conv history and the SSM state (fp32), per attention layer the K/V cache.
// Prefill in blocks, decode and sequence-parallel segments all continue from it.
#pragma once
#include <cstdint>
#include <vector>

namespace ringscan {

struct LayerCache {
  // Mamba: last conv_kernel-1 pre-conv xBC rows [K-1, conv_dim], zeros at start;
  // SSM state [heads, head_dim, state].
  std::vector<float> conv_history;
  std::vector<float> ssm_state;
  // Attention: keys/values of all earlier positions [n, kv_heads*head_dim]
  // (keys already rotated when RoPE is on), and the position of row 0.
  std::vector<float> k, v;
  int64_t kv_rows = 0;
  int64_t kv_pos0 = 0;
};

struct InferenceState {
  std::vector<LayerCache> layers;
  int64_t position = 0;  // position of the next token
};

}  // namespace ringscan
