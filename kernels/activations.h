#pragma once
#include <cstdint>

#include "gpu_op.h"
#include "weight_view.h"

namespace ringscan::kernels {
// x = relu(x)^2, in place (Nemotron-H's MLP activation).
#define RINGSCAN_RELU_SQUARED_SIG (float* x, int64_t n)
// out = silu(gate) * up (SwiGLU). out may alias gate or up.
#define RINGSCAN_SILU_MUL_SIG (const float* gate, const float* up, int64_t n, float* out)
// Mamba's time step: dt[t, h] = clamp(softplus(raw[t, h] + bias[h]), lo, hi),
// raw has leading dimension ld_raw, dt is [rows, heads] contiguous.
// softplus(v) = log1p(exp(v)), and v for v > 20 (as torch's threshold).
#define RINGSCAN_DT_SOFTPLUS_SIG                                                         \
  (const float* raw, int64_t ld_raw, int64_t rows, int64_t heads, const WeightView& bias, \
   float lo, float hi, float* dt)
namespace ref {
void relu_squared RINGSCAN_RELU_SQUARED_SIG;
void silu_mul RINGSCAN_SILU_MUL_SIG;
void dt_softplus RINGSCAN_DT_SOFTPLUS_SIG;
}  // namespace ref
namespace cpu {
void relu_squared RINGSCAN_RELU_SQUARED_SIG;
void silu_mul RINGSCAN_SILU_MUL_SIG;
void dt_softplus RINGSCAN_DT_SOFTPLUS_SIG;
}  // namespace cpu
#ifdef RINGSCAN_WITH_CUDA
namespace cuda {  // device pointers, see cuda/cuda_common.cuh; stream: gpu_op.h
void relu_squared RINGSCAN_CUDA_SIG(RINGSCAN_RELU_SQUARED_SIG);
// The same on bf16 values in place (x: n bf16), squared in fp32 and rounded
// once: the GPU engine's MLP, between a GEMM that writes bf16 and one that reads it.
void relu_squared_bf16(void* x, int64_t n, GpuStream stream = nullptr);
void silu_mul RINGSCAN_CUDA_SIG(RINGSCAN_SILU_MUL_SIG);
void dt_softplus RINGSCAN_CUDA_SIG(RINGSCAN_DT_SOFTPLUS_SIG);
}  // namespace cuda
#endif
}  // namespace ringscan::kernels
