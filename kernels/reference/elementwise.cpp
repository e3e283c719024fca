#include "elementwise.h"

namespace ringscan::kernels::ref {

void add_inplace(const float* x, int64_t n, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void head_scale_add(const float* x, int64_t ld_x, int64_t rows, int64_t heads, int64_t head_dim, const float* D,
                    float* y) {
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t p = 0; p < head_dim; ++p)
        y[(t * heads + h) * head_dim + p] += D[h] * x[t * ld_x + h * head_dim + p];
}

}  // namespace ringscan::kernels::ref
