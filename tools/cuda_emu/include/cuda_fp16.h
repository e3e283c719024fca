// cuda_emu: __half (IEEE binary16) with round-to-nearest-even conversions.
#pragma once
#include <cstdint>
#include <cstring>

struct __half_raw { unsigned short x; };
namespace emu {
inline float half_bits_to_float(uint16_t h) {
  const uint32_t s = uint32_t(h & 0x8000u) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ffu;
  uint32_t b;
  if (e == 0) {
    if (m == 0) b = s;
    else {  // subnormal
      float f = float(m) * (1.f / 16777216.f);  // m * 2^-24
      std::memcpy(&b, &f, 4);
      b |= s;
    }
  } else if (e == 31) b = s | 0x7f800000u | (m << 13);
  else b = s | ((e + 112) << 23) | (m << 13);
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
inline uint16_t float_to_half_bits(float f) {  // round to nearest even
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t s = (x >> 16) & 0x8000u;
  const uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return s | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0);
  if (ax >= 0x477ff000u) return s | 0x7c00u;  // rounds to >= 65520: inf
  if (ax < 0x38800000u) {  // subnormal half (or zero)
    float a;
    std::memcpy(&a, &ax, 4);
    const float q = a * 16777216.f;  // in units of 2^-24, exact scaling
    return s | static_cast<uint16_t>(__builtin_nearbyintf(q));
  }
  const uint32_t e = (ax >> 23) - 112, m = ax & 0x7fffffu;
  uint32_t h = (e << 10) | (m >> 13);
  const uint32_t rest = m & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return s | static_cast<uint16_t>(h);
}
}  // namespace emu
struct __half {
  unsigned short __x;
  __half() = default;
  __half(__half_raw r) : __x(r.x) {}
  __half(float f) : __x(emu::float_to_half_bits(f)) {}
  __half(double f) : __x(emu::float_to_half_bits(static_cast<float>(f))) {}
  operator float() const { return emu::half_bits_to_float(__x); }
  operator __half_raw() const { return __half_raw{__x}; }
};
typedef __half half;
inline float __half2float(__half h) { return emu::half_bits_to_float(h.__x); }
inline __half __float2half(float f) { __half h; h.__x = emu::float_to_half_bits(f); return h; }
inline __half __float2half_rn(float f) { return __float2half(f); }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline __half __ushort_as_half(unsigned short u) { __half h; h.__x = u; return h; }
