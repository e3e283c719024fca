#pragma once
#include <cstdint>

namespace ringscan::kernels {
// Block-wise causal GQA attention with the online softmax. The same block
// routine serves single-rank attention (loop over key blocks), ring attention
// (key blocks arrive from other ranks) and sharded decode (partials merged).
//
// Layouts: q is [lq, q_heads, head_dim] (row leading dimension ld_q), k and v
// are [lk, kv_heads, head_dim] (ld_k, ld_v). Query head h reads KV head
// h / (q_heads / kv_heads) (heads of one KV group are consecutive, as HF's
// repeat_kv). Positions are consecutive within a block: query row i has
// position q_pos0 + i, key row j has k_pos0 + j; with causal, key j is seen by
// query i only when k_pos <= q_pos.
//
// Running state per (query row, head), all fp32:
//   m   [lq, q_heads]            running max of scaled scores (-inf: none yet)
//   l   [lq, q_heads]            running sum of exp(score - m)
//   acc [lq, q_heads, head_dim]  running sum of exp(score - m) * v
struct AttentionShape {
  int64_t q_heads;
  int64_t kv_heads;
  int64_t head_dim;
};

// Sets m = -inf, l = 0, acc = 0.
#define RINGSCAN_ATTENTION_INIT_SIG \
  (const AttentionShape& s, int64_t lq, float* acc, float* m, float* l)
// Folds one key/value block into the running state.
#define RINGSCAN_ATTENTION_BLOCK_SIG                                                    \
  (const AttentionShape& s, const float* q, int64_t ld_q, int64_t lq, int64_t q_pos0,   \
   const float* k, int64_t ld_k, const float* v, int64_t ld_v, int64_t lk, int64_t k_pos0, \
   float scale, bool causal, float* acc, float* m, float* l)
// Merges another partial state (acc2, m2, l2) over disjoint keys into (acc, m, l).
#define RINGSCAN_ATTENTION_MERGE_SIG                                                    \
  (const AttentionShape& s, int64_t lq, const float* acc2, const float* m2, const float* l2, \
   float* acc, float* m, float* l)
// out[i, h, :] = acc / l (rows with no visible key give zeros); out has ld_out.
#define RINGSCAN_ATTENTION_FINALIZE_SIG                                                 \
  (const AttentionShape& s, int64_t lq, const float* acc, const float* l, float* out,   \
   int64_t ld_out)

namespace ref {
void attention_init RINGSCAN_ATTENTION_INIT_SIG;
void attention_block RINGSCAN_ATTENTION_BLOCK_SIG;
void attention_merge RINGSCAN_ATTENTION_MERGE_SIG;
void attention_finalize RINGSCAN_ATTENTION_FINALIZE_SIG;
}  // namespace ref
namespace cpu {
void attention_init RINGSCAN_ATTENTION_INIT_SIG;
void attention_block RINGSCAN_ATTENTION_BLOCK_SIG;
void attention_merge RINGSCAN_ATTENTION_MERGE_SIG;
void attention_finalize RINGSCAN_ATTENTION_FINALIZE_SIG;
}  // namespace cpu
#ifdef RINGSCAN_WITH_CUDA
// Device pointers for q, k, v, acc, m, l, acc2, m2, l2 and out (see
// cuda/cuda_common.cuh); the shape stays on the host. head_dim 1..256.
// Same semantics as above (m: running max of scaled scores, -inf none yet; a
// row with no visible key stays m = -inf, l = 0, acc = 0); fp32 arithmetic
// throughout, so results agree with ref to fp32 round-off, not bitwise
// (cuda/attention.cu says how it computes, the CUDA test what it allows).
namespace cuda {
void attention_init RINGSCAN_ATTENTION_INIT_SIG;
void attention_block RINGSCAN_ATTENTION_BLOCK_SIG;
void attention_merge RINGSCAN_ATTENTION_MERGE_SIG;
void attention_finalize RINGSCAN_ATTENTION_FINALIZE_SIG;
}  // namespace cuda
#endif
}  // namespace ringscan::kernels
