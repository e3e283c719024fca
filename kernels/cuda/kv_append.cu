// One thread per (sequence, column) of the new K and V rows: each writes its
// element to the row its sequence's cache appends at (kv_append.h).
#include "cuda/cuda_common.cuh"
#include "kv_append.h"

namespace ringscan::kernels::cuda {
namespace {

constexpr int kBlock = 256;

template <class T>
__global__ void kv_append_kernel(const float* k_new, const float* v_new, int64_t ld_new, int64_t batch,
                                 int64_t width, void* const* k_cache, void* const* v_cache, const int32_t* row) {
  const int64_t n = batch * width;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = i / width, c = i % width;
    if (!k_cache[b]) continue;  // padding row
    const int64_t at = int64_t{row[b]} * width + c;
    detail::store_as(static_cast<T*>(k_cache[b]) + at, k_new[b * ld_new + c]);
    detail::store_as(static_cast<T*>(v_cache[b]) + at, v_new[b * ld_new + c]);
  }
}

template <class T>
__global__ void store_rows_kernel(const float* x, int64_t ld_x, int64_t rows, int64_t width, T* out, int64_t ld_out) {
  const int64_t n = rows * width;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    detail::store_as(out + (i / width) * ld_out + i % width, x[(i / width) * ld_x + i % width]);
}

}  // namespace

void store_rows(const float* x, int64_t ld_x, int64_t rows, int64_t width, void* out, int64_t ld_out, DType dtype,
                GpuStream stream) {
  if (dtype != DType::F32 && dtype != DType::BF16)
    throw std::invalid_argument("cuda::store_rows: the output dtype must be F32 or BF16");
  const int64_t n = rows * width;
  if (n <= 0) return;
  if (dtype == DType::F32)
    store_rows_kernel<float><<<detail::grid_for(n, kBlock), kBlock, 0, stream>>>(x, ld_x, rows, width,
                                                                                  static_cast<float*>(out), ld_out);
  else
    store_rows_kernel<__nv_bfloat16><<<detail::grid_for(n, kBlock), kBlock, 0, stream>>>(
        x, ld_x, rows, width, static_cast<__nv_bfloat16*>(out), ld_out);
  detail::check_launch("store_rows");
}

void kv_append(const float* k_new, const float* v_new, int64_t ld_new, int64_t batch, int64_t width,
               void* const* k_cache, void* const* v_cache, const int32_t* row, DType dtype, GpuStream stream) {
  if (dtype != DType::F32 && dtype != DType::BF16)
    throw std::invalid_argument("cuda::kv_append: the cache dtype must be F32 or BF16");
  const int64_t n = batch * width;
  if (n <= 0) return;
  if (dtype == DType::F32)
    kv_append_kernel<float><<<detail::grid_for(n, kBlock), kBlock, 0, stream>>>(k_new, v_new, ld_new, batch, width,
                                                                                 k_cache, v_cache, row);
  else
    kv_append_kernel<__nv_bfloat16><<<detail::grid_for(n, kBlock), kBlock, 0, stream>>>(
        k_new, v_new, ld_new, batch, width, k_cache, v_cache, row);
  detail::check_launch("kv_append");
}

}  // namespace ringscan::kernels::cuda
