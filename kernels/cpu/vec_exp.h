// exp(x) in a form the compiler vectorises (std::exp is a libm call per element,
// and GCC keeps std::floor/std::max loops scalar). Cephes' single-precision
// range reduction and polynomial, about 1 ulp for x in [-87, 88]; below -87 it
// returns 0 (the true value is < 2e-38, noise next to any weight or output),
// above 88 +inf, NaN stays NaN. Shared by the softmax, attention and SSD kernels.
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>

namespace ringscan::kernels::cpu {

inline float exp_vec(float x) {
  float xc = x > -87.0f ? x : -87.0f;  // also maps NaN to a finite value for the bit work
  xc = xc < 88.0f ? xc : 88.0f;
  // n = round(xc / ln 2) by the 1.5 * 2^23 trick: n sits in the low mantissa bits of t.
  const float t = xc * 1.44269504088896341f + 12582912.0f;
  const float n = t - 12582912.0f;
  const float r = xc - n * 0.693359375f + n * 2.12194440e-4f;  // xc - n ln2 in two parts
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t n_int = std::bit_cast<int32_t>(t) - std::bit_cast<int32_t>(12582912.0f);
  const float v = p * std::bit_cast<float>((n_int + 127) << 23);
  return x != x ? x : (x < -87.0f ? 0.0f : (x > 88.0f ? INFINITY : v));
}

}  // namespace ringscan::kernels::cpu
