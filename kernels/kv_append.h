#pragma once
#include <cstdint>

#include "gpu_op.h"
#include "weight_view.h"

namespace ringscan::kernels {
// Decode: each sequence of a batch appends its new key and value rows to its
// own KV cache. Row b of k_new / v_new (fp32, [batch, width] with leading
// dimension ld_new: the k and v columns of the fused Q/K/V output) is written
// to row row[b] of k_cache[b] / v_cache[b] ([capacity, width], `dtype` F32, or
// BF16 rounded to nearest even). A null k_cache[b] marks a padding row:
// skipped. k_cache, v_cache and row are arrays of batch entries (host memory
// for ref/cpu; device memory, pointing to device memory, for cuda).
#define RINGSCAN_KV_APPEND_SIG                                                                    \
  (const float* k_new, const float* v_new, int64_t ld_new, int64_t batch, int64_t width,          \
   void* const* k_cache, void* const* v_cache, const int32_t* row, DType dtype)
namespace ref { void kv_append RINGSCAN_KV_APPEND_SIG; }
namespace cpu { void kv_append RINGSCAN_KV_APPEND_SIG; }
#ifdef RINGSCAN_WITH_CUDA
namespace cuda {
void kv_append RINGSCAN_CUDA_SIG(RINGSCAN_KV_APPEND_SIG);
// The prefill form: `rows` consecutive rows of one sequence, out[r] = x[r]
// (fp32 rows with leading dimension ld_x; out [rows, width] with ld_out, in
// dtype F32 or BF16 as kv_append stores them): a block's K or V into its cache,
// or the block's queries rounded to the cache's dtype for the attention kernel.
void store_rows(const float* x, int64_t ld_x, int64_t rows, int64_t width, void* out, int64_t ld_out, DType dtype,
                GpuStream stream = nullptr);
}  // namespace cuda
#endif
}  // namespace ringscan::kernels
