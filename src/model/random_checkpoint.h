// Deterministic random checkpoints of any config (make-model): the same seed
// gives the same bytes whatever the thread count. Scales keep activations and
// logits in a realistic range so tests can tell right from wrong.
#pragma once
#include <cstdint>
#include <string>

#include "kernels/weight_view.h"
#include "model/config.h"
#include "model/safetensors.h"

namespace ringscan {

struct RandomCheckpointOptions {
  uint64_t seed = 0;
  DType dtype = DType::BF16;
  uint64_t max_shard_bytes = 4ull << 30;  // larger checkpoints are sharded with an index
};

// Writes config.json and model.safetensors (or shards + index) into dir.
void write_random_checkpoint(const ModelConfig& c, const std::string& dir, const RandomCheckpointOptions& opt);

// The same tensors, bit for bit, in memory (max_shard_bytes is unused).
Checkpoint random_checkpoint_in_memory(const ModelConfig& c, const RandomCheckpointOptions& opt);

}  // namespace ringscan
