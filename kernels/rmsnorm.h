#pragma once
#include <cstdint>

#include "weight_view.h"

namespace ringscan::kernels {
// out[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * weight. Rows are
// contiguous ([rows, dim]); out may alias x.
#define RINGSCAN_RMSNORM_SIG \
  (const float* x, int64_t rows, int64_t dim, const WeightView& weight, float eps, float* out)
namespace ref { void rmsnorm RINGSCAN_RMSNORM_SIG; }
namespace cpu { void rmsnorm RINGSCAN_RMSNORM_SIG; }
#ifdef RINGSCAN_WITH_CUDA
namespace cuda { void rmsnorm RINGSCAN_RMSNORM_SIG; }  // device pointers, see cuda/cuda_common.cuh
#endif
}  // namespace ringscan::kernels
