#pragma once
#include <cstdint>

#include "gpu_op.h"

namespace ringscan::kernels {
// The two additions of a Nemotron-H block, as ops so that the CPU and CUDA
// engines share one definition.
//
// y[i] += x[i] for i < n: the residual add after each mixer.
#define RINGSCAN_ADD_INPLACE_SIG (const float* x, int64_t n, float* y)
// Mamba-2's skip term: y[t, h*head_dim + p] += D[h] * x[t*ld_x + h*head_dim + p]
// for t < rows, h < heads, p < head_dim. y is [rows, heads*head_dim]
// contiguous; x is a column slice (ld_x) of the post-conv xBC; D is [heads]
// fp32 (a device pointer for cuda).
#define RINGSCAN_HEAD_SCALE_ADD_SIG                                                   \
  (const float* x, int64_t ld_x, int64_t rows, int64_t heads, int64_t head_dim, const float* D, \
   float* y)
namespace ref {
void add_inplace RINGSCAN_ADD_INPLACE_SIG;
void head_scale_add RINGSCAN_HEAD_SCALE_ADD_SIG;
}  // namespace ref
namespace cpu {
void add_inplace RINGSCAN_ADD_INPLACE_SIG;
void head_scale_add RINGSCAN_HEAD_SCALE_ADD_SIG;
}  // namespace cpu
#ifdef RINGSCAN_WITH_CUDA
namespace cuda {  // device pointers, see cuda/cuda_common.cuh
void add_inplace RINGSCAN_CUDA_SIG(RINGSCAN_ADD_INPLACE_SIG);
void head_scale_add RINGSCAN_CUDA_SIG(RINGSCAN_HEAD_SCALE_ADD_SIG);
}  // namespace cuda
#endif
}  // namespace ringscan::kernels
