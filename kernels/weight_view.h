// A read-only view of a weight tensor as stored in the checkpoint (often mmapped
// bf16). Kernels take weights through this view so that a bf16 checkpoint is
// never expanded to an fp32 copy of the whole model: kernels convert small
// panels on the fly and accumulate in fp32.
#pragma once
#include <cstdint>
#include <cstring>

namespace ringscan {

enum class DType : uint8_t { F32, F16, BF16 };

inline int dtype_size(DType d) { return d == DType::F32 ? 4 : 2; }
inline const char* dtype_name(DType d) {
  return d == DType::F32 ? "F32" : d == DType::F16 ? "F16" : "BF16";
}

inline float bf16_to_f32(uint16_t v) {
  uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round-to-nearest-even, NaN preserved.
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

float f16_to_f32(uint16_t v);
uint16_t f32_to_f16(float f);

// 2-D row-major view [rows, cols]; 1-D tensors have rows == 1.
struct WeightView {
  DType dtype = DType::F32;
  const void* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;

  int64_t numel() const { return rows * cols; }
  bool empty() const { return data == nullptr; }
  float at(int64_t i) const {
    switch (dtype) {
      case DType::F32: return static_cast<const float*>(data)[i];
      case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(data)[i]);
      case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(data)[i]);
    }
    return 0.f;
  }
  // Converts elements [offset, offset + n) to fp32 into out.
  void to_f32(int64_t offset, int64_t n, float* out) const;
  // Same rows [r0, r0 + nr) as a sub-view (no copy).
  WeightView row_slice(int64_t r0, int64_t nr) const {
    WeightView v = *this;
    v.data = static_cast<const char*>(data) + r0 * cols * dtype_size(dtype);
    v.rows = nr;
    return v;
  }
};

// Wraps an fp32 buffer (tests, activations used as weights).
inline WeightView f32_view(const float* p, int64_t rows, int64_t cols) {
  return WeightView{DType::F32, p, rows, cols};
}

}  // namespace ringscan
