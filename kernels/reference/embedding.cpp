#include "embedding.h"

namespace ringscan::kernels::ref {

void embedding(const WeightView& table, const int32_t* ids, int64_t n, float* out) {
  const int64_t dim = table.cols;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < dim; ++c) out[i * dim + c] = table.at(ids[i] * dim + c);
}

}  // namespace ringscan::kernels::ref
