#include "kv_append.h"

namespace ringscan::kernels::ref {

void kv_append(const float* k_new, const float* v_new, int64_t ld_new, int64_t batch, int64_t width,
               void* const* k_cache, void* const* v_cache, const int32_t* row, DType dtype) {
  // Element by element (the CPU form copies rows whole): row[b] of sequence b's caches.
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; k_cache[b] && i < width; ++i) {  // a null cache is a padding row
      const int64_t at = int64_t{row[b]} * width + i;
      const float k = k_new[b * ld_new + i], v = v_new[b * ld_new + i];
      if (dtype == DType::F32) {
        static_cast<float*>(k_cache[b])[at] = k;
        static_cast<float*>(v_cache[b])[at] = v;
      } else {
        static_cast<uint16_t*>(k_cache[b])[at] = f32_to_bf16(k);
        static_cast<uint16_t*>(v_cache[b])[at] = f32_to_bf16(v);
      }
    }
}

}  // namespace ringscan::kernels::ref
