// One thread per (row, head, rotated pair). Angles in double, like the
// reference (see rope.h): pos * inv_freq loses no position bits at long
// contexts. Rope runs on 4 attention layers' Q/K only, so fp64 cost is small.
#include "cuda/cuda_common.cuh"
#include "rope.h"

namespace ringscan::kernels::cuda {
namespace {

constexpr int kBlock = 256;

__global__ void rope_kernel(float* x, int64_t ld_x, int64_t rows, int64_t heads, int64_t head_dim,
                            int64_t rotary_dim, int64_t pos0, const int64_t* pos, double theta) {
  const int64_t half = rotary_dim / 2, n = rows * heads * half;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < n;
       k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = k % half, h = (k / half) % heads, r = k / (half * heads);
    float* xh = x + r * ld_x + h * head_dim;
    const double inv_freq = pow(theta, -2.0 * static_cast<double>(i) / rotary_dim);
    double s, c;
    sincos(static_cast<double>(pos ? pos[r] : pos0 + r) * inv_freq, &s, &c);
    const double x1 = xh[i], x2 = xh[i + half];
    xh[i] = static_cast<float>(x1 * c - x2 * s);
    xh[i + half] = static_cast<float>(x2 * c + x1 * s);
  }
}

}  // namespace

namespace {
void launch_rope(float* x, int64_t ld_x, int64_t rows, int64_t heads, int64_t head_dim, int64_t rotary_dim,
                 int64_t pos0, const int64_t* pos, float theta, GpuStream stream) {
  if (rotary_dim < 0 || rotary_dim > head_dim || rotary_dim % 2 != 0)
    throw std::invalid_argument("cuda::rope: rotary_dim must be even and at most head_dim");
  const int64_t n = rows * heads * (rotary_dim / 2);
  if (n <= 0) return;
  rope_kernel<<<detail::grid_for(n, kBlock), kBlock, 0, stream>>>(x, ld_x, rows, heads, head_dim, rotary_dim,
                                                       pos0, pos, static_cast<double>(theta));
  detail::check_launch("rope");
}
}  // namespace

void rope(float* x, int64_t ld_x, int64_t rows, int64_t heads, int64_t head_dim,
          int64_t rotary_dim, int64_t pos0, float theta, GpuStream stream) {
  launch_rope(x, ld_x, rows, heads, head_dim, rotary_dim, pos0, nullptr, theta, stream);
}

void rope_at(float* x, int64_t ld_x, int64_t rows, int64_t heads, int64_t head_dim, int64_t rotary_dim,
             const int64_t* pos, float theta, GpuStream stream) {
  if (!pos) throw std::invalid_argument("cuda::rope_at: positions are required");
  launch_rope(x, ld_x, rows, heads, head_dim, rotary_dim, 0, pos, theta, stream);
}

}  // namespace ringscan::kernels::cuda
