#include "rmsnorm.h"

#include <cmath>
#include <stdexcept>
#include <vector>

namespace ringscan::kernels::cpu {

void rmsnorm(const float* x, int64_t rows, int64_t dim, const WeightView& weight, float eps,
             float* out) {
  if (weight.numel() != dim) throw std::invalid_argument("rmsnorm: weight must have dim elements");
  std::vector<float> w(static_cast<size_t>(dim));
  weight.to_f32(0, dim, w.data());
#pragma omp parallel for schedule(static) if (rows * dim > (int64_t{1} << 15))
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* o = out + r * dim;  // may be xr: each element is read before it is written
    float sumsq = 0.f;
#pragma omp simd reduction(+ : sumsq)
    for (int64_t c = 0; c < dim; ++c) sumsq += xr[c] * xr[c];
    const float inv = 1.f / std::sqrt(sumsq / static_cast<float>(dim) + eps);
#pragma omp simd
    for (int64_t c = 0; c < dim; ++c) o[c] = xr[c] * inv * w[c];
  }
}

}  // namespace ringscan::kernels::cpu
