// How much memory a run needs, per rank: what `ringscan info` prints and what
// the scheduler sizes sequence-parallel groups from.
#pragma once
#include <cstdint>
#include <string>

#include "model/config.h"

namespace ringscan {

struct MemoryPlan {
  int64_t tokens_per_rank = 0;
  uint64_t weight_bytes = 0;        // checkpoint as stored (mmapped; shared by ranks on a node)
  uint64_t residual_bytes = 0;      // fp32 hidden states of the rank's tokens
  uint64_t kv_cache_bytes = 0;      // fp32 K/V of the rank's tokens, all attention layers
  uint64_t ssm_state_bytes = 0;     // fp32 Mamba + conv states, all Mamba layers
  uint64_t workspace_bytes = 0;     // per-block activations (block_tokens rows)
  uint64_t sequence_parallel_bytes = 0;  // ring K/V buffers and in-flight states
  uint64_t total_private() const {
    return residual_bytes + kv_cache_bytes + ssm_state_bytes + workspace_bytes + sequence_parallel_bytes;
  }
};

MemoryPlan plan_memory(const ModelConfig& c, uint64_t weight_bytes, int64_t tokens, int ranks, int64_t block_tokens);

// KV cache bytes per token (fp32, all attention layers) and SSM state bytes per Mamba layer.
uint64_t kv_bytes_per_token(const ModelConfig& c);
uint64_t ssm_state_bytes_per_layer(const ModelConfig& c);

std::string human_bytes(uint64_t b);

}  // namespace ringscan
