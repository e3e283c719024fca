// Depthwise causal conv over time. Vectorised across channels: for each output
// row, K rows of input (from history or x) are scaled by one tap each.
#include "causal_conv1d.h"

#include <cmath>
#include <stdexcept>
#include <vector>

namespace ringscan::kernels::cpu {

void causal_conv1d(const float* x, int64_t ld_x, int64_t rows, int64_t channels,
                   const float* history, const WeightView& weight, const WeightView& bias,
                   bool apply_silu, float* out) {
  const int64_t C = channels, K = weight.cols;
  if (weight.rows != C || K < 1)
    throw std::invalid_argument("causal_conv1d: weight must be [channels, kernel size]");
  if (!bias.empty() && bias.numel() != C)
    throw std::invalid_argument("causal_conv1d: bias must have one element per channel");
  // Taps transposed to [K, C] so the inner loop runs over contiguous channels.
  std::vector<float> taps(static_cast<size_t>(K * C)), b(static_cast<size_t>(C), 0.f);
  {
    std::vector<float> w(static_cast<size_t>(C * K));
    weight.to_f32(0, C * K, w.data());
    for (int64_t c = 0; c < C; ++c)
      for (int64_t j = 0; j < K; ++j) taps[j * C + c] = w[c * K + j];
  }
  if (!bias.empty()) bias.to_f32(0, C, b.data());

#pragma omp parallel for schedule(static) if (rows * C * K > (int64_t{1} << 16))
  for (int64_t t = 0; t < rows; ++t) {
    float* o = out + t * C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) o[c] = b[c];
    for (int64_t j = 0; j < K; ++j) {
      const int64_t s = t - (K - 1) + j;  // input time; negative: history row K-1+s
      const float* in = s >= 0 ? x + s * ld_x : history ? history + (K - 1 + s) * C : nullptr;
      if (!in) continue;  // zero history
      const float* w = &taps[j * C];
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) o[c] += w[c] * in[c];
    }
    if (apply_silu)
      for (int64_t c = 0; c < C; ++c) o[c] = o[c] / (1.f + std::exp(-o[c]));
  }
}

}  // namespace ringscan::kernels::cpu
