#include <cstring>

#include "kv_append.h"

namespace ringscan::kernels::ref {

void kv_append(const float* k_new, const float* v_new, int64_t ld_new, int64_t batch, int64_t width,
               void* const* k_cache, void* const* v_cache, const int32_t* row, DType dtype) {
  for (int64_t b = 0; b < batch; ++b) {
    if (!k_cache[b]) continue;  // padding row
    for (int pass = 0; pass < 2; ++pass) {
      const float* src = (pass ? v_new : k_new) + b * ld_new;
      void* dst = pass ? v_cache[b] : k_cache[b];
      if (dtype == DType::F32) {
        std::memcpy(static_cast<float*>(dst) + int64_t{row[b]} * width, src, static_cast<size_t>(width) * 4);
      } else {
        uint16_t* d = static_cast<uint16_t*>(dst) + int64_t{row[b]} * width;
        for (int64_t i = 0; i < width; ++i) d[i] = f32_to_bf16(src[i]);
      }
    }
  }
}

}  // namespace ringscan::kernels::ref
