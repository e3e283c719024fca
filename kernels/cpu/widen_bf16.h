// bf16 rows to fp32, for the CPU attention kernels' key/value tiles (a saved
// state's bf16 K/V used in place): both the portable and the AVX-512 kernel
// widen a tile with this, so their fp32 copies are the same.
#pragma once
#include <cstdint>

#include "weight_view.h"

namespace ringscan::kernels::cpu {

// rows x cols bf16 (row stride ld) to packed fp32: exact (a shift into the high half).
inline void widen_bf16(const uint16_t* src, int64_t ld, int64_t rows, int64_t cols, float* dst) {
  for (int64_t r = 0; r < rows; ++r) {
    const uint16_t* a = src + r * ld;
    float* b = dst + r * cols;
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) b[c] = bf16_to_f32(a[c]);
  }
}

}  // namespace ringscan::kernels::cpu
