#include "log_softmax.h"

#include <algorithm>
#include <cmath>

#include "cpu/vec_exp.h"
#include <cstring>

namespace ringscan::kernels::cpu {
namespace {


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
      for (int64_t i = b; i < e; ++i) part += exp_vec(x[i] - mx);
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
