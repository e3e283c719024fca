#pragma once
#include <cstdint>

#include "weight_view.h"

namespace ringscan::kernels {
// y[r, o] = sum_i x[r, i] * weight[o, i]   (weight is [out_features, in_features],
// as PyTorch's nn.Linear stores it; no bias in this model family).
// x has leading dimension ld_x, y has ld_y. in_features == weight.cols,
// out_features == weight.rows. Accumulates in fp32 whatever the weight dtype;
// bf16/f16 weights are converted in row panels, never as a whole.
#define RINGSCAN_LINEAR_SIG                                                        \
  (const float* x, int64_t ld_x, int64_t rows, const WeightView& weight, float* y, \
   int64_t ld_y)
namespace ref { void linear RINGSCAN_LINEAR_SIG; }
namespace cpu { void linear RINGSCAN_LINEAR_SIG; }
#ifdef RINGSCAN_WITH_CUDA
namespace cuda { void linear RINGSCAN_LINEAR_SIG; }  // device pointers, see cuda/cuda_common.cuh
#endif
}  // namespace ringscan::kernels
