#include "rmsnorm.h"

#include <cmath>

namespace ringscan::kernels::ref {

void rmsnorm(const float* x, int64_t rows, int64_t dim, const WeightView& weight, float eps,
             float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    double sumsq = 0;
    for (int64_t c = 0; c < dim; ++c) sumsq += static_cast<double>(xr[c]) * xr[c];
    const double inv = 1.0 / std::sqrt(sumsq / dim + eps);
    for (int64_t c = 0; c < dim; ++c)
      out[r * dim + c] = static_cast<float>(xr[c] * inv * weight.at(c));
  }
}

}  // namespace ringscan::kernels::ref
