#include "elementwise.h"

namespace ringscan::kernels::cpu {

void add_inplace(const float* x, int64_t n, float* y) {
#pragma omp parallel for simd schedule(static) if (n > (int64_t{1} << 16))
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void head_scale_add(const float* x, int64_t ld_x, int64_t rows, int64_t heads, int64_t head_dim, const float* D,
                    float* y) {
#pragma omp parallel for schedule(static) if (rows * heads * head_dim > (int64_t{1} << 16))
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t h = 0; h < heads; ++h) {
      const float d = D[h];
      const float* xr = x + t * ld_x + h * head_dim;
      float* yr = y + (t * heads + h) * head_dim;
#pragma omp simd
      for (int64_t p = 0; p < head_dim; ++p) yr[p] += d * xr[p];
    }
}

}  // namespace ringscan::kernels::cpu
