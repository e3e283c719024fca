#include "causal_conv1d.h"

#include <cmath>

namespace ringscan::kernels::ref {

void causal_conv1d(const float* x, int64_t ld_x, int64_t rows, int64_t channels,
                   const float* history, const WeightView& weight, const WeightView& bias,
                   bool apply_silu, float* out) {
  const int64_t K = weight.cols;
  for (int64_t t = 0; t < rows; ++t) {
    for (int64_t c = 0; c < channels; ++c) {
      double sum = bias.empty() ? 0.0 : bias.at(c);
      for (int64_t j = 0; j < K; ++j) {
        const int64_t s = t - (K - 1) + j;  // time index into x; negative: history
        double xv;
        if (s >= 0)
          xv = x[s * ld_x + c];
        else
          xv = history ? history[(K - 1 + s) * channels + c] : 0.0;
        sum += weight.at(c * K + j) * xv;
      }
      if (apply_silu) sum = sum / (1.0 + std::exp(-sum));
      out[t * channels + c] = static_cast<float>(sum);
    }
  }
}

}  // namespace ringscan::kernels::ref
