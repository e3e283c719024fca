#pragma once
// cuda_emu: cp.async through the CUDA C++ pipeline primitives
// (__pipeline_memcpy_async / __pipeline_commit / __pipeline_wait_prior, as
// CUDA's cuda_pipeline.h declares them). A copy is queued per thread and done
// when a wait covers its commit group (synchronous copies, but deferred), so
// a tile read before its wait shows poisoned or stale shared memory, as a
// missing wait would on the GPU. Checks: size 4, 8 or 16, both addresses
// aligned to it, zfill <= size, and no copy left un-waited at a block's end.
#include <cstddef>

namespace emu {
void async_copy(void* dst, const void* src, size_t bytes, size_t zfill);
void async_commit();
void async_wait_prior(size_t prior);
}  // namespace emu

inline void __pipeline_memcpy_async(void* dst_shared, const void* src_global, size_t size_and_align,
                                    size_t zfill = 0) {
  emu::async_copy(dst_shared, src_global, size_and_align, zfill);
}
inline void __pipeline_commit() { emu::async_commit(); }
inline void __pipeline_wait_prior(size_t prior) { emu::async_wait_prior(prior); }
