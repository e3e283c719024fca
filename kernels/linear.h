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
namespace cuda {  // device pointers, see cuda/cuda_common.cuh
// The exact-input product above: bf16/f16 weight panels widened to fp32, fp32 GEMM, no TF32.
void linear RINGSCAN_LINEAR_SIG;
// The fast one: x rounded to bf16 (relative error <= 2^-9 per element), the
// weight must be BF16; products on the tensor cores, accumulated in fp32,
// y in fp32. What the GPU engine uses by default (DESIGN §3: bf16 weights,
// fp32 accumulation).
void linear_bf16 RINGSCAN_LINEAR_SIG;
}  // namespace cuda
#endif
}  // namespace ringscan::kernels
