#include "gated_rmsnorm.h"

#include <cmath>
#include <stdexcept>
#include <vector>

namespace ringscan::kernels::cpu {

void gated_rmsnorm(const float* y, const float* z, int64_t ld_z, int64_t rows, int64_t dim,
                   int64_t group_size, const WeightView& weight, float eps, float* out) {
  if (group_size <= 0 || dim % group_size != 0)
    throw std::invalid_argument("gated_rmsnorm: dim must be a multiple of group_size");
  if (weight.numel() != dim)
    throw std::invalid_argument("gated_rmsnorm: weight must have dim elements");
  std::vector<float> w(static_cast<size_t>(dim));
  weight.to_f32(0, dim, w.data());
#pragma omp parallel if (rows * dim > (int64_t{1} << 15))
  {
    std::vector<float> g(static_cast<size_t>(dim));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const float* yr = y + r * dim;
      const float* zr = z + r * ld_z;
      for (int64_t c = 0; c < dim; ++c) g[c] = yr[c] * (zr[c] / (1.f + std::exp(-zr[c])));
      float* o = out + r * dim;  // may be yr: y is fully read into g first
      for (int64_t g0 = 0; g0 < dim; g0 += group_size) {
        float sumsq = 0.f;
#pragma omp simd reduction(+ : sumsq)
        for (int64_t c = g0; c < g0 + group_size; ++c) sumsq += g[c] * g[c];
        const float inv = 1.f / std::sqrt(sumsq / static_cast<float>(group_size) + eps);
#pragma omp simd
        for (int64_t c = g0; c < g0 + group_size; ++c) o[c] = g[c] * inv * w[c];
      }
    }
  }
}

}  // namespace ringscan::kernels::cpu
