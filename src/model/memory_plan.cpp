#include "model/memory_plan.h"

#include <algorithm>
#include <cstdio>

namespace ringscan {

uint64_t kv_bytes_per_token(const ModelConfig& c) {
  return static_cast<uint64_t>(c.count(LayerKind::Attention)) * 2 * c.num_kv_heads * c.head_dim * 4;
}

uint64_t ssm_state_bytes_per_layer(const ModelConfig& c) {
  return static_cast<uint64_t>(c.mamba_heads * c.mamba_head_dim * c.ssm_state + (c.conv_kernel - 1) * c.conv_dim()) * 4;
}

MemoryPlan plan_memory(const ModelConfig& c, uint64_t weight_bytes, int64_t tokens, int ranks, int64_t block_tokens) {
  MemoryPlan p;
  ranks = std::max(ranks, 1);
  p.tokens_per_rank = (tokens + ranks - 1) / ranks;
  const uint64_t T = static_cast<uint64_t>(p.tokens_per_rank);
  // One rank prefills in blocks; a sequence-parallel segment is processed whole.
  const uint64_t B = ranks > 1 ? T : static_cast<uint64_t>(std::min<int64_t>(block_tokens, p.tokens_per_rank));
  p.weight_bytes = weight_bytes;
  p.residual_bytes = T * c.hidden_size * 4;
  p.kv_cache_bytes = T * kv_bytes_per_token(c);
  p.ssm_state_bytes = c.count(LayerKind::Mamba) * ssm_state_bytes_per_layer(c);
  // Per block: normed input + mixer output, plus the widest mixer's buffers.
  const uint64_t mamba = c.count(LayerKind::Mamba) ? c.in_proj_dim() + c.conv_dim() + c.d_inner() + c.mamba_heads : 0;
  const uint64_t attn = c.count(LayerKind::Attention) ? 2 * c.num_heads * c.head_dim + 2 * c.num_kv_heads * c.head_dim : 0;
  const uint64_t mlp = c.count(LayerKind::Mlp) ? (c.mlp == MlpKind::SwiGlu ? 2 : 1) * c.intermediate_size : 0;
  p.workspace_bytes = B * (2 * c.hidden_size + std::max({mamba, attn, mlp})) * 4;
  if (ranks > 1) {
    // Ring attention holds the block being computed and the one arriving.
    p.sequence_parallel_bytes = 2 * T * 2 * c.num_kv_heads * c.head_dim * 4 + 2 * ssm_state_bytes_per_layer(c);
  }
  return p;
}

std::string human_bytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f %s", v, units[u]);
  return buf;
}

}  // namespace ringscan
