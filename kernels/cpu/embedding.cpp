#include "embedding.h"

namespace ringscan::kernels::cpu {

void embedding(const WeightView& table, const int32_t* ids, int64_t n, float* out) {
  const int64_t dim = table.cols;
#pragma omp parallel for schedule(static) if (n * dim > (int64_t{1} << 16))
  for (int64_t i = 0; i < n; ++i) table.to_f32(ids[i] * dim, dim, out + i * dim);
}

}  // namespace ringscan::kernels::cpu
