#pragma once
#include <cstddef>
#include <cstdint>

#include "attention.h"
#include "gpu_op.h"
#include "weight_view.h"

namespace ringscan::kernels {
// Decode attention for a batch of sequences, one query each, in one call:
// sequence b's query q[b] ([q_heads, head_dim], row stride ld_q, fp32) attends
// to keys [0, len[b]) of its own cache k_cache[b] / v_cache[b] ([rows,
// kv_heads * head_dim], kv_dtype F32 or BF16), all visible (a cache holds the
// past and the token itself). GQA as attention.h (query head h reads KV head
// h / (q_heads / kv_heads)). It writes the attention state of attention.h as
// attention_init followed by attention_block over those keys would, with the
// scores scaled by `scale`: acc [batch, q_heads, head_dim], m and l [batch,
// q_heads], so attention_finalize gives the output and attention_merge
// combines it with partials of other key shards (sharded decode). len[b] == 0
// or a null k_cache[b] (a padding row) gives the empty state (m = -inf, l = 0,
// acc = 0). k_cache, v_cache and len are arrays of batch entries (host memory
// for ref/cpu; device memory for cuda).
#define RINGSCAN_ATTENTION_DECODE_SIG                                                             \
  (const AttentionShape& s, const float* q, int64_t ld_q, int64_t batch, const void* const* k_cache, \
   const void* const* v_cache, DType kv_dtype, const int32_t* len, float scale, float* acc, float* m, float* l)
// The key splits the CUDA op makes for a batch (1..16: enough blocks to fill
// an H200 twice; never dependent on the lengths) and the bytes of workspace
// their partials need (0 for one split). Host functions in every build, so
// that memory plans count the workspace.
int attention_decode_splits(const AttentionShape& s, int64_t batch);
size_t attention_decode_workspace(const AttentionShape& s, int64_t batch);
namespace ref { void attention_decode RINGSCAN_ATTENTION_DECODE_SIG; }
namespace cpu { void attention_decode RINGSCAN_ATTENTION_DECODE_SIG; }
#ifdef RINGSCAN_WITH_CUDA
// CUDA (cuda/attention_decode.cu): one launch for the batch, split-K over
// keys: each (sequence, KV head, split) block folds its share of the keys
// (ceil(len / splits) of them, from the length read on the device, so a
// captured graph serves any lengths), and a second launch merges the splits'
// partials by their log-sum-exp. The number of splits depends only on the
// batch size and the shape (attention_decode_splits), never on the lengths,
// and is capped by the workspace: partials need attention_decode_workspace(s,
// batch) bytes; with less the op splits less (none without workspace). fp32 scores, softmax statistics and accumulation;
// BF16 keys and values are widened exactly. Follows the GPU op contract.
namespace cuda {
void attention_decode RINGSCAN_CUDA_WS_SIG(RINGSCAN_ATTENTION_DECODE_SIG);
}  // namespace cuda
#endif
}  // namespace ringscan::kernels
