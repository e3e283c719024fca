// Element-wise activations, one thread per element with a grid stride. All in
// fp32 with the accurate (non -use_fast_math) expf/log1pf.
#include "activations.h"
#include "cuda/cuda_common.cuh"

namespace ringscan::kernels::cuda {
namespace {

constexpr int kBlock = 256;

__global__ void relu_squared_kernel(float* x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float r = x[i] > 0.f ? x[i] : 0.f;
    x[i] = r * r;
  }
}

__global__ void relu_squared_bf16_kernel(__nv_bfloat16* x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float v = __bfloat162float(x[i]);
    const float r = v > 0.f ? v : 0.f;
    x[i] = __float2bfloat16_rn(r * r);
  }
}

__global__ void silu_mul_kernel(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    out[i] = g / (1.f + expf(-g)) * up[i];
  }
}

__global__ void dt_softplus_kernel(const float* raw, int64_t ld_raw, int64_t rows, int64_t heads,
                                   const void* bias, DType bdt, float lo, float hi, float* dt) {
  const int64_t n = rows * heads;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = i / heads, h = i % heads;
    const float v = raw[t * ld_raw + h] + detail::load_weight(bias, bdt, h);
    const float sp = v > 20.f ? v : log1pf(expf(v));  // torch's threshold, as the reference
    dt[i] = fminf(fmaxf(sp, lo), hi);
  }
}

}  // namespace

void relu_squared(float* x, int64_t n, GpuStream stream) {
  if (n <= 0) return;
  relu_squared_kernel<<<detail::grid_for(n, kBlock), kBlock, 0, stream>>>(x, n);
  detail::check_launch("relu_squared");
}

void relu_squared_bf16(void* x, int64_t n, GpuStream stream) {
  if (n <= 0) return;
  relu_squared_bf16_kernel<<<detail::grid_for(n, kBlock), kBlock, 0, stream>>>(static_cast<__nv_bfloat16*>(x), n);
  detail::check_launch("relu_squared_bf16");
}

void silu_mul(const float* gate, const float* up, int64_t n, float* out, GpuStream stream) {
  if (n <= 0) return;
  silu_mul_kernel<<<detail::grid_for(n, kBlock), kBlock, 0, stream>>>(gate, up, n, out);
  detail::check_launch("silu_mul");
}

void dt_softplus(const float* raw, int64_t ld_raw, int64_t rows, int64_t heads,
                 const WeightView& bias, float lo, float hi, float* dt, GpuStream stream) {
  if (bias.numel() != heads)
    throw std::invalid_argument("cuda::dt_softplus: bias must have one element per head");
  if (rows <= 0 || heads <= 0) return;
  dt_softplus_kernel<<<detail::grid_for(rows * heads, kBlock), kBlock, 0, stream>>>(
      raw, ld_raw, rows, heads, bias.data, bias.dtype, lo, hi, dt);
  detail::check_launch("dt_softplus");
}

}  // namespace ringscan::kernels::cuda
