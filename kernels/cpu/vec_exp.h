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

// The constants of that exp, shared with the AVX-512 attention kernel's
// 16-lane form (cpu/attention_avx512.cpp), so the two cannot drift apart.
namespace exp_const {
inline constexpr float kMin = -87.0f, kMax = 88.0f;  // 0 below kMin, +inf above kMax
inline constexpr float kRound = 12582912.0f;         // 1.5 * 2^23: x + kRound rounds x to an integer
inline constexpr float kLog2e = 1.44269504088896341f;
inline constexpr float kLn2Hi = 0.693359375f, kLn2Lo = 2.12194440e-4f;  // ln 2 = kLn2Hi - kLn2Lo
// exp(r) ~ 1 + r + r^2 (kP5 + r (kP4 + r (kP3 + r (kP2 + r (kP1 + r kP0))))) on |r| <= ln2 / 2
inline constexpr float kP0 = 1.9875691500e-4f, kP1 = 1.3981999507e-3f, kP2 = 8.3334519073e-3f,
                       kP3 = 4.1665795894e-2f, kP4 = 1.6666665459e-1f, kP5 = 5.0000001201e-1f;
}  // namespace exp_const

inline float exp_vec(float x) {
  using namespace exp_const;
  float xc = x > kMin ? x : kMin;  // also maps NaN to a finite value for the bit work
  xc = xc < kMax ? xc : kMax;
  // n = round(xc / ln 2) by the 1.5 * 2^23 trick: n sits in the low mantissa bits of t.
  const float t = xc * kLog2e + kRound;
  const float n = t - kRound;
  const float r = xc - n * kLn2Hi + n * kLn2Lo;  // xc - n ln2 in two parts
  float p = kP0;
  p = p * r + kP1;
  p = p * r + kP2;
  p = p * r + kP3;
  p = p * r + kP4;
  p = p * r + kP5;
  p = p * r * r + r + 1.0f;
  const int32_t n_int = std::bit_cast<int32_t>(t) - std::bit_cast<int32_t>(kRound);
  const float v = p * std::bit_cast<float>((n_int + 127) << 23);
  return x != x ? x : (x < kMin ? 0.0f : (x > kMax ? INFINITY : v));
}

}  // namespace ringscan::kernels::cpu
