#include "linear.h"

namespace ringscan::kernels::ref {

void linear(const float* x, int64_t ld_x, int64_t rows, const WeightView& weight, float* y,
            int64_t ld_y) {
  const int64_t in = weight.cols, out = weight.rows;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t o = 0; o < out; ++o) {
      double sum = 0;
      for (int64_t i = 0; i < in; ++i)
        sum += static_cast<double>(x[r * ld_x + i]) * weight.at(o * in + i);
      y[r * ld_y + o] = static_cast<float>(sum);
    }
  }
}

}  // namespace ringscan::kernels::ref
