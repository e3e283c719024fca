// Model FLOPs of a prefill, counted as the useful multiply-adds x 2 (the
// convention of MFU): every projection, causal attention (scores and values,
// half the square), the SSD scan's matrix form (per chunk: C B^T, its use on x,
// chunk states, state outputs). Norms, activations and the conv are left out
// (a few per cent at most).
#pragma once
#include <cstdint>

#include "model/config.h"

namespace ringscan {

inline double prefill_flops(const ModelConfig& c, int64_t L) {
  const double D = c.hidden_size, T = static_cast<double>(L);
  double per_token = 0;
  for (auto k : c.layers) {
    switch (k) {
      case LayerKind::Mamba: per_token += 2 * D * (c.in_proj_dim() + c.d_inner()); break;
      case LayerKind::Attention: per_token += 2 * D * (2 * c.num_heads * c.head_dim + 2 * c.num_kv_heads * c.head_dim); break;
      case LayerKind::Mlp: per_token += 2 * D * c.intermediate_size * (c.mlp == MlpKind::SwiGlu ? 3 : 2); break;
    }
  }
  per_token += 2 * D * c.vocab_size;  // lm_head
  double total = per_token * T;
  // Attention: QK^T and PV over ~T/2 visible keys per query.
  total += c.count(LayerKind::Attention) * 2.0 * 2.0 * c.num_heads * c.head_dim * T * (T + 1) / 2;
  // SSD: per token, intra-chunk (C B^T per group and its product with x per head over ~chunk/2
  // keys) plus chunk-state and state-output GEMMs (2 x head_dim x state per head).
  const double Q = static_cast<double>(std::min<int64_t>(c.chunk_size, L));
  const double ssd_per_token = 2.0 * c.n_groups * c.ssm_state * Q / 2 + 2.0 * c.mamba_heads * c.mamba_head_dim * Q / 2 +
                               2.0 * 2.0 * c.mamba_heads * c.mamba_head_dim * c.ssm_state;
  total += c.count(LayerKind::Mamba) * ssd_per_token * T;
  return total;
}

}  // namespace ringscan
