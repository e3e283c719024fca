#include <cmath>

#include "causal_conv1d.h"

namespace ringscan::kernels::ref {

void causal_conv1d_update(const float* x, int64_t ld_x, int64_t batch, int64_t channels, float* const* history,
                          const WeightView& weight, const WeightView& bias, bool apply_silu, float* out) {
  const int64_t K = weight.cols;
  for (int64_t b = 0; b < batch; ++b) {
    float* hist = history[b];
    for (int64_t c = 0; c < channels; ++c) {
      if (!hist) {
        out[b * channels + c] = 0.f;
        continue;
      }
      const float xv = x[b * ld_x + c];
      double sum = bias.empty() ? 0.0 : bias.at(c);
      for (int64_t j = 0; j + 1 < K; ++j) sum += double(weight.at(c * K + j)) * hist[j * channels + c];
      sum += double(weight.at(c * K + K - 1)) * xv;
      if (apply_silu) sum = sum / (1.0 + std::exp(-sum));
      out[b * channels + c] = static_cast<float>(sum);
      for (int64_t j = 0; j + 2 < K; ++j) hist[j * channels + c] = hist[(j + 1) * channels + c];
      if (K > 1) hist[(K - 2) * channels + c] = xv;
    }
  }
}

}  // namespace ringscan::kernels::ref
