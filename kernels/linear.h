#pragma once
#include <cstddef>
#include <cstdint>

#include "gpu_op.h"
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
// (For tests against the CPU: the panels live in a per-thread buffer that grows,
// so calls on different streams must not overlap.)
void linear RINGSCAN_CUDA_SIG(RINGSCAN_LINEAR_SIG);
// y = x W^T, or y += x W^T with `accumulate` (the residual add in the GEMM's
// epilogue: cuBLAS's beta = 1), for the exact fp32 path (linear above).
void linear_accumulate RINGSCAN_CUDA_SIG(RINGSCAN_LINEAR_SIG);

// The fast one, what the GPU engine uses by default (DESIGN §3: bf16 weights
// and inputs, fp32 accumulation), with a dtype axis, under the op contract (gpu_op.h):
// y (+)= x W^T with a BF16 weight, x in F32 or BF16 (ld_x in elements), y in
// F32 or BF16 (ld_y); products on the tensor cores, fp32 accumulation, one
// rounding of y when it is BF16. accumulate (F32 y only): y += x W^T, the
// residual add in the epilogue. An F32 x is rounded to bf16 into `ws`
// (gemm_bf16_workspace bytes for all rows at once; with less, the rows go in
// as many passes as needed, never an allocation). Runs on `stream`.
size_t gemm_bf16_workspace(DType x_dtype, int64_t rows, int64_t in_features);
// cuBLAS's workspace for the GEMMs queued on `stream` (both functions above),
// caller-owned: a stream whose GEMMs run at the same time as another's needs
// its own (one cuBLAS handle serves every stream of a thread, and its default
// workspace would be shared). kGemmWorkspaceBytes is cuBLAS's recommendation
// for Hopper. data = null forgets the stream's (before freeing it).
inline constexpr size_t kGemmWorkspaceBytes = size_t{32} << 20;
void set_gemm_workspace(GpuStream stream, void* data, size_t bytes);
void gemm_bf16(const void* x, DType x_dtype, int64_t ld_x, int64_t rows, const WeightView& weight, void* y,
               DType y_dtype, int64_t ld_y, bool accumulate, const Workspace& ws, GpuStream stream);
}  // namespace cuda
#endif
}  // namespace ringscan::kernels
