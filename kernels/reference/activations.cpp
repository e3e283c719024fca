#include "activations.h"

#include <algorithm>
#include <cmath>

namespace ringscan::kernels::ref {

void relu_squared(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const double r = x[i] > 0 ? x[i] : 0.0;
    x[i] = static_cast<float>(r * r);
  }
}

void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const double g = gate[i];
    out[i] = static_cast<float>(g / (1.0 + std::exp(-g)) * up[i]);
  }
}

void dt_softplus(const float* raw, int64_t ld_raw, int64_t rows, int64_t heads,
                 const WeightView& bias, float lo, float hi, float* dt) {
  for (int64_t t = 0; t < rows; ++t) {
    for (int64_t h = 0; h < heads; ++h) {
      // The sum is rounded to fp32 first, as torch adds two fp32 tensors.
      const float v = raw[t * ld_raw + h] + bias.at(h);
      const double sp = v > 20.f ? v : std::log1p(std::exp(static_cast<double>(v)));
      dt[t * heads + h] = std::clamp(static_cast<float>(sp), lo, hi);
    }
  }
}

}  // namespace ringscan::kernels::ref
