// Angles in double: pos * inv_freq in fp32 would be off by up to pos * 2^-24
// radians, which matters at the positions long documents reach.
#include "rope.h"

#include <cmath>
#include <vector>

namespace ringscan::kernels::cpu {

void rope(float* x, int64_t ld_x, int64_t rows, int64_t heads, int64_t head_dim, int64_t rotary_dim,
          int64_t pos0, float theta) {
  const int64_t half = rotary_dim / 2;
  std::vector<double> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    inv_freq[i] = std::pow(static_cast<double>(theta), -2.0 * i / rotary_dim);
#pragma omp parallel if (rows * heads * rotary_dim > (int64_t{1} << 15))
  {
    std::vector<float> cs(static_cast<size_t>(half)), sn(static_cast<size_t>(half));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const double pos = static_cast<double>(pos0 + r);
      for (int64_t i = 0; i < half; ++i) {
        cs[i] = static_cast<float>(std::cos(pos * inv_freq[i]));
        sn[i] = static_cast<float>(std::sin(pos * inv_freq[i]));
      }
      for (int64_t h = 0; h < heads; ++h) {
        float* x1 = x + r * ld_x + h * head_dim;
        float* x2 = x1 + half;
#pragma omp simd
        for (int64_t i = 0; i < half; ++i) {
          const float a = x1[i], b = x2[i];
          x1[i] = a * cs[i] - b * sn[i];
          x2[i] = b * cs[i] + a * sn[i];
        }
      }
    }
  }
}

}  // namespace ringscan::kernels::cpu
