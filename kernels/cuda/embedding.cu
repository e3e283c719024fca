// One block row per token: a gather of one table row, converted to fp32.
// ids are device memory and, as for the CPU twin, already validated by the caller.
#include "cuda/cuda_common.cuh"
#include "embedding.h"

namespace ringscan::kernels::cuda {
namespace {

__global__ void embedding_kernel(const void* table, DType dt, int64_t dim, const int32_t* ids,
                                 int64_t n, float* out) {
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const int64_t base = static_cast<int64_t>(ids[i]) * dim;
    for (int64_t c = threadIdx.x; c < dim; c += blockDim.x)
      out[i * dim + c] = detail::load_weight(table, dt, base + c);
  }
}

}  // namespace

void embedding(const WeightView& table, const int32_t* ids, int64_t n, float* out, GpuStream stream) {
  if (n <= 0 || table.cols <= 0) return;
  const unsigned grid = static_cast<unsigned>(n < 65535 * 16 ? n : 65535 * 16);
  embedding_kernel<<<grid, 256, 0, stream>>>(table.data, table.dtype, table.cols, ids, n, out);
  detail::check_launch("embedding");
}

}  // namespace ringscan::kernels::cuda
