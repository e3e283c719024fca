#include "gated_rmsnorm.h"

#include <cmath>
#include <vector>

namespace ringscan::kernels::ref {

void gated_rmsnorm(const float* y, const float* z, int64_t ld_z, int64_t rows, int64_t dim,
                   int64_t group_size, const WeightView& weight, float eps, float* out) {
  std::vector<double> g(static_cast<size_t>(dim));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < dim; ++c) {
      const double zz = z[r * ld_z + c];
      g[c] = y[r * dim + c] * (zz / (1.0 + std::exp(-zz)));
    }
    for (int64_t g0 = 0; g0 < dim; g0 += group_size) {
      double sumsq = 0;
      for (int64_t c = g0; c < g0 + group_size; ++c) sumsq += g[c] * g[c];
      const double inv = 1.0 / std::sqrt(sumsq / group_size + eps);
      for (int64_t c = g0; c < g0 + group_size; ++c)
        out[r * dim + c] = static_cast<float>(g[c] * inv * weight.at(c));
    }
  }
}

}  // namespace ringscan::kernels::ref
