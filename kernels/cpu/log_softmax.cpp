#include "log_softmax.h"

#include <algorithm>
#include <cmath>

#include "cpu/vec_exp.h"

namespace ringscan::kernels::cpu {
namespace {

struct RowStats {
  float max;
  float log_sum;  // log(sum_i exp(x_i - max))
};

RowStats row_stats(const float* x, int64_t vocab) {
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
  return {mx, static_cast<float>(std::log(sum))};
}

}  // namespace

void log_softmax(const float* logits, int64_t rows, int64_t vocab, float* out) {
#pragma omp parallel for schedule(static) if (rows * vocab > (int64_t{1} << 16))
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = logits + r * vocab;
    float* o = out + r * vocab;  // may be x: x is only read before the last loop
    const RowStats s = row_stats(x, vocab);
    // (x - max) - log(sum) rather than x - (max + log(sum)): no rounding of a
    // large max + small log.
#pragma omp simd
    for (int64_t i = 0; i < vocab; ++i) o[i] = (x[i] - s.max) - s.log_sum;
  }
}

void token_log_prob(const float* logits, int64_t rows, int64_t vocab, const int32_t* targets, float* out) {
#pragma omp parallel for schedule(static) if (rows * vocab > (int64_t{1} << 16))
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = logits + r * vocab;
    const RowStats s = row_stats(x, vocab);
    out[r] = (x[targets[r]] - s.max) - s.log_sum;  // the same expression as log_softmax
  }
}

}  // namespace ringscan::kernels::cpu
