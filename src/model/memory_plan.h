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

// What the GPU engine (model/device_model.h) holds on one GPU, per rank.
// Weights are counted as the device holds them (bf16), once per rank: ranks
// sharing a GPU each upload their own copy.
struct DeviceMemoryPlan {
  int64_t tokens_per_rank = 0;
  uint64_t weight_bytes = 0;
  uint64_t arena_bytes = 0;              // one block's activations and logits rows (fixed)
  uint64_t kv_cache_bytes = 0;           // fp32 K/V of the rank's tokens
  uint64_t ssm_state_bytes = 0;          // fp32 Mamba + conv states
  uint64_t sequence_parallel_bytes = 0;  // the GPU runner's per-segment buffers (ranks > 1)
  uint64_t scratch_bytes = 0;            // kernels' own: bf16 GEMM inputs, SSD scan passes, state correction
  uint64_t total() const {
    return weight_bytes + arena_bytes + kv_cache_bytes + ssm_state_bytes + sequence_parallel_bytes + scratch_bytes;
  }
};
DeviceMemoryPlan plan_device_memory(const ModelConfig& c, int64_t tokens, int ranks, int64_t block_tokens);

// The GPU engine's activation arena for blocks of `block` tokens: elements of
// each buffer (DeviceModel lays its arena out from this, the plan sums it).
struct DeviceArena {
  int64_t block = 0, logits_rows = 0;
  int64_t h = 0, normed = 0, proj = 0, conv = 0, dt = 0, y = 0, qkv = 0, acc = 0, m = 0, l = 0,
          up = 0, gate = 0, hist_tmp = 0, logits = 0, logprob = 0;  // floats
  int64_t targets = 0, ids = 0, seq = 0;  // int32 (seq: packed prefill's sequence index per row)
  int64_t pos = 0;             // int64: packed prefill's position of each row in its sequence (RoPE)
  int64_t decode_tables = 0;   // bytes: a decode step's tables (decode_table_layout), device copy
  int64_t attn_decode_ws = 0;  // bytes: split-over-keys partials of decode attention (any batch <= block)
  int64_t attn_ws = 0;  // bytes: split-over-keys partials of the tensor-core attention
  int64_t gemm_ws = 0;  // bytes: a block's fp32 GEMM inputs rounded to bf16 (the widest)
  int64_t ssd_ws = 0;   // bytes: the SSD scan's scratch for a block (longer scans go in passes)
  uint64_t bytes() const;  // with 256-byte alignment of each buffer
};
DeviceArena device_arena(const ModelConfig& c, int64_t block);

// What a batched GPU decode step reads besides activations and weights, for
// `rows` sequences: one table, filled on the host in pinned memory and copied
// to the device with one asynchronous copy per step, so that a captured graph
// of the step serves any sequences (the pointers and positions are data, not
// launch arguments). Byte offsets of arrays of `rows` entries; the per-layer
// ones hold one array per Mamba / attention layer, in layer order.
struct DecodeTableLayout {
  int64_t rows = 0;
  uint64_t ids = 0;          // int32: the new tokens
  uint64_t pos = 0;          // int64: their positions (RoPE)
  uint64_t conv_hist = 0;    // float*: per Mamba layer, each sequence's conv history
  uint64_t ssm_state = 0;    // float*: per Mamba layer, each sequence's SSM state
  uint64_t kv_k = 0, kv_v = 0;  // void*: per attention layer, each sequence's K / V cache
  uint64_t kv_row = 0;       // int32: per attention layer, the row the new K/V go to
  uint64_t kv_len = 0;       // int32: per attention layer, keys after the append
  uint64_t sample = 0;       // kernels::cuda::SampleRow (kSampleRowBytes each)
  uint64_t bytes = 0;        // all of it (one upload)
};
inline constexpr uint64_t kSampleRowBytes = 40;
DecodeTableLayout decode_table_layout(const ModelConfig& c, int64_t rows);

// KV cache bytes per token (all attention layers; fp32 elements unless
// elem_bytes says otherwise) and SSM state bytes per Mamba layer.
uint64_t kv_bytes_per_token(const ModelConfig& c, int elem_bytes = 4);
uint64_t ssm_state_bytes_per_layer(const ModelConfig& c);

std::string human_bytes(uint64_t b);

}  // namespace ringscan
