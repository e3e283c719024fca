// The small kernels around cuDNN's attention (attention_cudnn.cpp, which is
// host code compiled without nvcc): bf16 rows widened to fp32 (an F32 output,
// and acc of attention_cudnn_to_state), cuDNN's packed [heads, lq] statistics
// transposed to our [lq, heads], and m = lse, l = 1. Compiled only with
// RINGSCAN_WITH_CUDNN (the emulator, which globs every .cu, gets an empty file).
#ifdef RINGSCAN_WITH_CUDNN
#include "attention.h"
#include "cuda/cuda_common.cuh"

namespace ringscan::kernels::cuda {
namespace {

__global__ void widen_bf16_rows_kernel(const __nv_bfloat16* src, int64_t ld_src, int64_t rows, int64_t cols,
                                       float* dst, int64_t ld_dst) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / cols, c = i % cols;
    dst[r * ld_dst + c] = __bfloat162float(src[r * ld_src + c]);
  }
}

// src [heads, lq] -> dst [lq, heads].
__global__ void transpose_stats_kernel(const float* src, int64_t heads, int64_t lq, float* dst) {
  const int64_t n = heads * lq;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = i / heads, h = i % heads;
    dst[i] = src[h * lq + row];
  }
}

__global__ void fill_state_stats_kernel(const float* lse, int64_t n, float* m, float* l) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    m[i] = lse[i];
    l[i] = 1.f;
  }
}

constexpr int kBlock = 256;

}  // namespace

namespace cudnn_detail {

void widen_bf16_rows(const void* src, int64_t ld_src, int64_t rows, int64_t cols, float* dst, int64_t ld_dst,
                     GpuStream stream) {
  if (rows <= 0 || cols <= 0) return;
  widen_bf16_rows_kernel<<<detail::grid_for(rows * cols, kBlock), kBlock, 0, stream>>>(
      static_cast<const __nv_bfloat16*>(src), ld_src, rows, cols, dst, ld_dst);
  detail::check_launch("attention_cudnn (widen bf16)");
}

void transpose_stats(const float* src, int64_t heads, int64_t lq, float* dst, GpuStream stream) {
  if (heads <= 0 || lq <= 0) return;
  transpose_stats_kernel<<<detail::grid_for(heads * lq, kBlock), kBlock, 0, stream>>>(src, heads, lq, dst);
  detail::check_launch("attention_cudnn (stats transpose)");
}

void fill_state_stats(const float* lse, int64_t n, float* m, float* l, GpuStream stream) {
  if (n <= 0) return;
  fill_state_stats_kernel<<<detail::grid_for(n, kBlock), kBlock, 0, stream>>>(lse, n, m, l);
  detail::check_launch("attention_cudnn_to_state");
}

}  // namespace cudnn_detail
}  // namespace ringscan::kernels::cuda
#endif  // RINGSCAN_WITH_CUDNN
