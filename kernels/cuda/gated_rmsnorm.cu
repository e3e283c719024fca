// One block per (row, group): g = y * silu(z) is formed in fp32, its mean
// square reduced over the group as in rmsnorm.cu, then scaled by the weight.
// The gate is recomputed in the write pass rather than staged in shared memory
// (groups can be 7680 channels wide); y and z are read twice from L2.
#include "cuda/cuda_common.cuh"
#include "gated_rmsnorm.h"

namespace ringscan::kernels::cuda {
namespace {

constexpr int kBlock = 256;

__device__ __forceinline__ float gate(float y, float z) { return y * (z / (1.f + expf(-z))); }

template <class Out>
__global__ void gated_rmsnorm_kernel(const float* y, const float* z, int64_t ld_z, int64_t rows,
                                     int64_t dim, int64_t group_size, const void* w, DType wdt,
                                     float eps, Out* out) {
  __shared__ float scratch[32];
  const int64_t groups = dim / group_size, blocks = rows * groups;
  for (int64_t b = blockIdx.x; b < blocks; b += gridDim.x) {
    const int64_t r = b / groups, c0 = (b % groups) * group_size;
    const float* yr = y + r * dim + c0;
    const float* zr = z + r * ld_z + c0;
    float s = 0.f;
    for (int64_t c = threadIdx.x; c < group_size; c += blockDim.x) {
      const float g = gate(yr[c], zr[c]);
      s = fmaf(g, g, s);
    }
    s = detail::block_sum(s, scratch);
    const float inv = rsqrtf(s / static_cast<float>(group_size) + eps);
    // Same thread reads y[c] and then writes out[c]: safe when out aliases y.
    for (int64_t c = threadIdx.x; c < group_size; c += blockDim.x)
      detail::store_as(out + r * dim + c0 + c, gate(yr[c], zr[c]) * inv * detail::load_weight(w, wdt, c0 + c));
  }
}

}  // namespace

void gated_rmsnorm_to(const float* y, const float* z, int64_t ld_z, int64_t rows, int64_t dim, int64_t group_size,
                      const WeightView& weight, float eps, void* out, DType out_dtype, GpuStream stream) {
  if (group_size <= 0 || dim % group_size != 0)
    throw std::invalid_argument("cuda::gated_rmsnorm: dim must be a multiple of group_size");
  if (weight.numel() != dim)
    throw std::invalid_argument("cuda::gated_rmsnorm: weight must have dim elements");
  if (out_dtype != DType::F32 && out_dtype != DType::BF16)
    throw std::invalid_argument("cuda::gated_rmsnorm_to: the output must be F32 or BF16");
  if (rows <= 0 || dim <= 0) return;
  const int64_t blocks = rows * (dim / group_size);
  const unsigned grid = static_cast<unsigned>(blocks < 65535 * 16 ? blocks : 65535 * 16);
  const void* w = weight.data;
  if (out_dtype == DType::F32)
    gated_rmsnorm_kernel<float><<<grid, kBlock, 0, stream>>>(y, z, ld_z, rows, dim, group_size, w, weight.dtype, eps,
                                                             static_cast<float*>(out));
  else
    gated_rmsnorm_kernel<__nv_bfloat16><<<grid, kBlock, 0, stream>>>(y, z, ld_z, rows, dim, group_size, w, weight.dtype,
                                                                     eps, static_cast<__nv_bfloat16*>(out));
  detail::check_launch("gated_rmsnorm");
}

void gated_rmsnorm(const float* y, const float* z, int64_t ld_z, int64_t rows, int64_t dim, int64_t group_size,
                   const WeightView& weight, float eps, float* out, GpuStream stream) {
  gated_rmsnorm_to(y, z, ld_z, rows, dim, group_size, weight, eps, out, DType::F32, stream);
}

}  // namespace ringscan::kernels::cuda
