#pragma once
#include <cstdint>

#include "gpu_op.h"
#include "weight_view.h"

namespace ringscan::kernels {
// Mamba-2's gated RMSNorm (norm after gate, as HF's MambaRMSNormGated):
//   g = y * silu(z);  each group of group_size consecutive channels of g is
//   divided by sqrt(mean(g_group^2) + eps); then multiplied by weight.
// y and out are [rows, dim] contiguous (out may alias y); z has leading
// dimension ld_z. dim must be a multiple of group_size.
#define RINGSCAN_GATED_RMSNORM_SIG                                                       \
  (const float* y, const float* z, int64_t ld_z, int64_t rows, int64_t dim,              \
   int64_t group_size, const WeightView& weight, float eps, float* out)
namespace ref { void gated_rmsnorm RINGSCAN_GATED_RMSNORM_SIG; }
namespace cpu { void gated_rmsnorm RINGSCAN_GATED_RMSNORM_SIG; }
#ifdef RINGSCAN_WITH_CUDA
namespace cuda {  // device pointers, see cuda/cuda_common.cuh
void gated_rmsnorm RINGSCAN_CUDA_SIG(RINGSCAN_GATED_RMSNORM_SIG);
// The same with the output in out_dtype (F32 or BF16, rounded to nearest
// even): what feeds the GPU engine's out_proj GEMM directly. A BF16 out must
// not overlap y or z.
void gated_rmsnorm_to(const float* y, const float* z, int64_t ld_z, int64_t rows, int64_t dim, int64_t group_size,
                      const WeightView& weight, float eps, void* out, DType out_dtype, GpuStream stream = nullptr);
}  // namespace cuda
#endif
}  // namespace ringscan::kernels
