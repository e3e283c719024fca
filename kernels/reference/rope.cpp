#include "rope.h"

#include <cmath>

namespace ringscan::kernels::ref {

void rope(float* x, int64_t ld_x, int64_t rows, int64_t heads, int64_t head_dim, int64_t rotary_dim,
          int64_t pos0, float theta) {
  const int64_t half = rotary_dim / 2;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t h = 0; h < heads; ++h) {
      float* xh = x + r * ld_x + h * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const double inv_freq = std::pow(static_cast<double>(theta), -2.0 * i / rotary_dim);
        const double angle = static_cast<double>(pos0 + r) * inv_freq;
        const double c = std::cos(angle), s = std::sin(angle);
        const double x1 = xh[i], x2 = xh[i + half];
        xh[i] = static_cast<float>(x1 * c - x2 * s);
        xh[i + half] = static_cast<float>(x2 * c + x1 * s);
      }
    }
  }
}

}  // namespace ringscan::kernels::ref
