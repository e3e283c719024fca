#pragma once
#include <cstdint>

#include "gpu_op.h"
#include "weight_view.h"

namespace ringscan::kernels {
// out[i, :] = table[ids[i], :] as fp32. table is [vocab, dim]; ids must be
// in range (the caller validates them and reports bad ids).
#define RINGSCAN_EMBEDDING_SIG \
  (const WeightView& table, const int32_t* ids, int64_t n, float* out)
namespace ref { void embedding RINGSCAN_EMBEDDING_SIG; }
namespace cpu { void embedding RINGSCAN_EMBEDDING_SIG; }
#ifdef RINGSCAN_WITH_CUDA
namespace cuda { void embedding RINGSCAN_CUDA_SIG(RINGSCAN_EMBEDDING_SIG); }  // device pointers, see cuda/cuda_common.cuh
#endif
}  // namespace ringscan::kernels
