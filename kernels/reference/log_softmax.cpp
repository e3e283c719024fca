#include "log_softmax.h"

#include <cmath>
#include <vector>

namespace ringscan::kernels::ref {

void log_softmax(const float* logits, int64_t rows, int64_t vocab, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* lr = logits + r * vocab;
    double mx = -INFINITY;
    for (int64_t i = 0; i < vocab; ++i) mx = std::max(mx, static_cast<double>(lr[i]));
    double sum = 0;
    for (int64_t i = 0; i < vocab; ++i) sum += std::exp(lr[i] - mx);
    const double lse = mx + std::log(sum);
    for (int64_t i = 0; i < vocab; ++i) out[r * vocab + i] = static_cast<float>(lr[i] - lse);
  }
}

void token_log_prob(const float* logits, int64_t rows, int64_t vocab, const int32_t* targets, float* out) {
  std::vector<float> row(vocab);
  for (int64_t r = 0; r < rows; ++r) {
    log_softmax(logits + r * vocab, 1, vocab, row.data());
    out[r] = row[targets[r]];
  }
}

}  // namespace ringscan::kernels::ref
