#include "activations.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

namespace ringscan::kernels::cpu {

void relu_squared(float* x, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > (int64_t{1} << 16))
  for (int64_t i = 0; i < n; ++i) {
    const float r = x[i] > 0.f ? x[i] : 0.f;
    x[i] = r * r;
  }
}

void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
#pragma omp parallel for schedule(static) if (n > (int64_t{1} << 16))
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.f + std::exp(-g)) * up[i];  // out may be gate or up: both read first
  }
}

void dt_softplus(const float* raw, int64_t ld_raw, int64_t rows, int64_t heads,
                 const WeightView& bias, float lo, float hi, float* dt) {
  if (bias.numel() != heads)
    throw std::invalid_argument("dt_softplus: bias must have one element per head");
  std::vector<float> b(static_cast<size_t>(heads));
  bias.to_f32(0, heads, b.data());
#pragma omp parallel for schedule(static) if (rows * heads > (int64_t{1} << 15))
  for (int64_t t = 0; t < rows; ++t) {
    for (int64_t h = 0; h < heads; ++h) {
      const float v = raw[t * ld_raw + h] + b[h];
      const float sp = v > 20.f ? v : std::log1p(std::exp(v));  // torch's threshold
      dt[t * heads + h] = std::clamp(sp, lo, hi);
    }
  }
}

}  // namespace ringscan::kernels::cpu
