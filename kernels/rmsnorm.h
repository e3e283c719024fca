#pragma once
#include <cstdint>

#include "gpu_op.h"
#include "weight_view.h"

namespace ringscan::kernels {
// out[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * weight. Rows are
// contiguous ([rows, dim]); out may alias x.
#define RINGSCAN_RMSNORM_SIG \
  (const float* x, int64_t rows, int64_t dim, const WeightView& weight, float eps, float* out)
namespace ref { void rmsnorm RINGSCAN_RMSNORM_SIG; }
namespace cpu { void rmsnorm RINGSCAN_RMSNORM_SIG; }
#ifdef RINGSCAN_WITH_CUDA
namespace cuda {  // device pointers, see cuda/cuda_common.cuh
void rmsnorm RINGSCAN_CUDA_SIG(RINGSCAN_RMSNORM_SIG);
// The same with the output in out_dtype (F32 or BF16, rounded to nearest
// even): what feeds the GPU engine's bf16 GEMMs directly. A BF16 out must not
// overlap x.
void rmsnorm_to(const float* x, int64_t rows, int64_t dim, const WeightView& weight, float eps, void* out,
                DType out_dtype, GpuStream stream = nullptr);
}  // namespace cuda
#endif
}  // namespace ringscan::kernels
