#include "model/model_flops.h"

#include <algorithm>

namespace ringscan {

double projection_flops_per_token(const ModelConfig& c, LayerKind k) {
  const double D = static_cast<double>(c.hidden_size);
  switch (k) {
    case LayerKind::Mamba: return 2 * D * static_cast<double>(c.in_proj_dim() + c.d_inner());
    case LayerKind::Attention:
      return 2 * D * static_cast<double>(2 * c.num_heads * c.head_dim + 2 * c.num_kv_heads * c.head_dim);
    case LayerKind::Mlp:
      return 2 * D * static_cast<double>(c.intermediate_size) * (c.mlp == MlpKind::SwiGlu ? 3 : 2);
  }
  return 0;
}

double lm_head_flops_per_token(const ModelConfig& c) {
  return 2.0 * static_cast<double>(c.hidden_size) * static_cast<double>(c.vocab_size);
}

double attention_pair_flops(const ModelConfig& c) {
  return 2.0 * 2.0 * static_cast<double>(c.num_heads * c.head_dim);
}

double ssd_flops_per_token(const ModelConfig& c, int64_t L) {
  // Intra-chunk: C B^T per group and its product with x per head, over ~chunk/2
  // keys; plus the chunk-state and state-output GEMMs (head_dim x state per head).
  const double Q = static_cast<double>(std::min<int64_t>(c.chunk_size, std::max<int64_t>(L, 1)));
  return 2.0 * c.n_groups * c.ssm_state * Q / 2 + 2.0 * c.mamba_heads * c.mamba_head_dim * Q / 2 +
         2.0 * ssd_correction_flops_per_token(c);
}

double ssd_output_flops_per_token(const ModelConfig& c, int64_t L) {
  const double Q = static_cast<double>(std::min<int64_t>(c.chunk_size, std::max<int64_t>(L, 1)));
  return 2.0 * c.n_groups * c.ssm_state * Q / 2 + 2.0 * c.mamba_heads * c.mamba_head_dim * Q / 2 +
         ssd_correction_flops_per_token(c);
}

double ssd_correction_flops_per_token(const ModelConfig& c) {
  return 2.0 * static_cast<double>(c.mamba_heads * c.mamba_head_dim * c.ssm_state);
}

double prefill_flops(const ModelConfig& c, int64_t L) {
  const double T = static_cast<double>(L);
  double per_token = lm_head_flops_per_token(c);
  for (auto k : c.layers) per_token += projection_flops_per_token(c, k);
  double total = per_token * T;
  total += c.count(LayerKind::Attention) * attention_pair_flops(c) * T * (T + 1) / 2;
  total += c.count(LayerKind::Mamba) * ssd_flops_per_token(c, L) * T;
  return total;
}

}  // namespace ringscan
