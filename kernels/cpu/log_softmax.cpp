#include "log_softmax.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace ringscan::kernels::cpu {
namespace {

// exp(x) for x in [-87, 0] (logit - row max), about 2 ulp, vectorisable
// (std::exp is not without -ffast-math). Cephes' reduction and polynomial.
inline float exp_nonpositive(float x) {
  x = x < -87.0f ? -87.0f : x;  // exp(-87) ~ 1.6e-38: below that a weight is noise; NaN stays
  // n = round(x / ln2) by the 1.5 * 2^23 trick (n lands in t's low mantissa
  // bits); std::floor and std::max would keep GCC from vectorising this.
  const float t = x * 1.44269504088896341f + 12582912.0f;
  const float n = t - 12582912.0f;
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;  // x - n ln2 in two parts
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * r * r + r + 1.0f;
  int32_t t_bits;
  std::memcpy(&t_bits, &t, 4);
  const int32_t bits = (t_bits - 0x4B400000 + 127) << 23;  // 2^n
  float scale;
  std::memcpy(&scale, &bits, 4);
  return e * scale;
}

}  // namespace

void log_softmax(const float* logits, int64_t rows, int64_t vocab, float* out) {
#pragma omp parallel for schedule(static) if (rows * vocab > (int64_t{1} << 16))
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = logits + r * vocab;
    float* o = out + r * vocab;  // may be x: x is only read before the last loop
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int64_t i = 0; i < vocab; ++i) mx = mx > x[i] ? mx : x[i];
    // fp32 sums over blocks of 1024 terms (vectorised: 64 per SIMD lane),
    // added up in double: one fp32 sum of all 131072 terms would lose a few
    // ulp of the log-sum.
    double sum = 0.0;
    for (int64_t b = 0; b < vocab; b += 1024) {
      const int64_t e = std::min<int64_t>(vocab, b + 1024);
      float part = 0.f;
#pragma omp simd reduction(+ : part)
      for (int64_t i = b; i < e; ++i) part += exp_nonpositive(x[i] - mx);
      sum += part;
    }
    // (x - max) - log(sum) rather than x - (max + log(sum)): no rounding of a
    // large max + small log.
    const float log_sum = static_cast<float>(std::log(sum));
#pragma omp simd
    for (int64_t i = 0; i < vocab; ++i) o[i] = (x[i] - mx) - log_sum;
  }
}

}  // namespace ringscan::kernels::cpu
