// One new row per sequence: the one-row convolution of causal_conv1d after
// the sequence's own history, then the history shifted by that row.
#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "causal_conv1d.h"

namespace ringscan::kernels::cpu {

void causal_conv1d_update(const float* x, int64_t ld_x, int64_t batch, int64_t channels, float* const* history,
                          const WeightView& weight, const WeightView& bias, bool apply_silu, float* out) {
  const int64_t K = weight.cols;
  for (int64_t b = 0; b < batch; ++b) {
    float* hist = history[b];
    float* o = out + b * channels;
    if (!hist) {
      std::fill(o, o + channels, 0.f);
      continue;
    }
    causal_conv1d(x + b * ld_x, ld_x, 1, channels, K > 1 ? hist : nullptr, weight, bias, apply_silu, o);
    if (K > 1) {
      std::memmove(hist, hist + channels, static_cast<size_t>(K - 2) * channels * sizeof(float));
      std::memcpy(hist + (K - 2) * channels, x + b * ld_x, static_cast<size_t>(channels) * sizeof(float));
    }
  }
}

}  // namespace ringscan::kernels::cpu
