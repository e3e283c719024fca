#include "sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <vector>

namespace ringscan::kernels::ref {

namespace {
int32_t sample_row(const float* x, int64_t V, const SamplingParams& p, uint64_t stream, uint64_t step) {
  int64_t best = 0;
  for (int64_t i = 1; i < V; ++i)  // a NaN logit counts as -inf (as cuda's)
    if (x[i] > x[best] || std::isnan(x[best])) best = i;
  if (!std::isfinite(x[best])) return kSampleNonFinite;
  if (p.temperature <= 0.f) return static_cast<int32_t>(best);

  const double T = p.temperature, zmax = x[best] / T;
  std::vector<double> w(V);
  for (int64_t i = 0; i < V; ++i) w[i] = std::exp(x[i] / T - zmax);
  std::vector<char> keep(V, 1);

  if (p.top_k > 0 && p.top_k < V) {
    std::vector<float> sorted(x, x + V);
    std::sort(sorted.begin(), sorted.end(), std::greater<float>());
    const float kth = sorted[p.top_k - 1];
    for (int64_t i = 0; i < V; ++i) keep[i] = x[i] >= kth;
  }

  if (p.top_p < 1.f) {
    double total = 0;
    for (int64_t i = 0; i < V; ++i)
      if (keep[i]) total += w[i];
    std::vector<int64_t> order;
    for (int64_t i = 0; i < V; ++i)
      if (keep[i]) order.push_back(i);
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return w[a] > w[b] || (w[a] == w[b] && a < b); });
    double cum = 0;
    for (size_t j = 0; j < order.size(); ++j) {
      keep[order[j]] = j == 0 || cum / total < p.top_p;
      cum += w[order[j]];
    }
  }

  double kept_total = 0;
  for (int64_t i = 0; i < V; ++i)
    if (keep[i]) kept_total += w[i];
  const double target = sampling_uniform(p.seed, stream, step) * kept_total;
  double cum = 0;
  int64_t last = -1;
  for (int64_t i = 0; i < V; ++i) {
    if (!keep[i]) continue;
    cum += w[i];
    last = i;
    if (cum > target) return static_cast<int32_t>(i);
  }
  return static_cast<int32_t>(last);
}
}  // namespace

void sample(const float* logits, int64_t ld_logits, int64_t rows, int64_t vocab, const SamplingParams* params,
            const uint64_t* stream, const uint64_t* step, int32_t* out) {
  for (int64_t r = 0; r < rows; ++r) out[r] = sample_row(logits + r * ld_logits, vocab, params[r], stream[r], step[r]);
}

}  // namespace ringscan::kernels::ref
