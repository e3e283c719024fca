// Grid-stride loops, one element per thread and step; consecutive threads
// touch consecutive elements, so loads and stores coalesce.
#include "cuda/cuda_common.cuh"
#include "elementwise.h"

namespace ringscan::kernels::cuda {
namespace {

constexpr int kBlock = 256;

__global__ void add_inplace_kernel(const float* x, int64_t n, float* y) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] += x[i];
}

__global__ void head_scale_add_kernel(const float* x, int64_t ld_x, int64_t rows, int64_t heads,
                                      int64_t head_dim, const float* D, float* y) {
  const int64_t width = heads * head_dim, n = rows * width;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = i / width, c = i % width;
    y[i] = fmaf(D[c / head_dim], x[t * ld_x + c], y[i]);
  }
}

}  // namespace

void add_inplace(const float* x, int64_t n, float* y, GpuStream stream) {
  if (n <= 0) return;
  add_inplace_kernel<<<detail::grid_for(n, kBlock), kBlock, 0, stream>>>(x, n, y);
  detail::check_launch("add_inplace");
}

void head_scale_add(const float* x, int64_t ld_x, int64_t rows, int64_t heads, int64_t head_dim, const float* D,
                    float* y, GpuStream stream) {
  if (ld_x < heads * head_dim) throw std::invalid_argument("cuda::head_scale_add: ld_x < heads * head_dim");
  const int64_t n = rows * heads * head_dim;
  if (n <= 0) return;
  head_scale_add_kernel<<<detail::grid_for(n, kBlock), kBlock, 0, stream>>>(x, ld_x, rows, heads, head_dim, D, y);
  detail::check_launch("head_scale_add");
}

}  // namespace ringscan::kernels::cuda
