// Sampling without sorting the vocabulary: greedy is one pass; top-k finds its
// threshold with nth_element; top-p sorts only a growing prefix of the
// candidates (partial_sort of 64, 256, ... ids) until the prefix reaches
// top_p, which for a peaked distribution is a few dozen ids of 131072. The
// weights and every sum are computed in the same order as the reference, so
// the ids are bitwise the reference's.
#include "sampling.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace ringscan::kernels::cpu {

namespace {
struct RowScratch {
  std::vector<double> w;
  std::vector<float> values;
  std::vector<int32_t> ids;
  std::vector<char> keep;
};

int32_t sample_row(const float* x, int64_t V, const SamplingParams& p, uint64_t stream, uint64_t step,
                   RowScratch& s) {
  int64_t best = 0;
  // A NaN logit counts as -inf (as cuda's): only x[0] can start the maximum as
  // NaN, since a NaN never compares greater.
  float bx = std::isnan(x[0]) ? -INFINITY : x[0];
  for (int64_t i = 1; i < V; ++i)
    if (x[i] > bx) bx = x[i], best = i;
  if (!std::isfinite(bx)) return kSampleNonFinite;
  if (p.temperature <= 0.f) return static_cast<int32_t>(best);

  const double T = p.temperature, zmax = bx / T;
  s.w.resize(V);
  for (int64_t i = 0; i < V; ++i) s.w[i] = std::exp(x[i] / T - zmax);
  const double* w = s.w.data();
  s.keep.assign(V, 1);

  if (p.top_k > 0 && p.top_k < V) {
    s.values.assign(x, x + V);
    std::nth_element(s.values.begin(), s.values.begin() + (p.top_k - 1), s.values.end(), std::greater<float>());
    const float kth = s.values[p.top_k - 1];
    for (int64_t i = 0; i < V; ++i) s.keep[i] = x[i] >= kth;
  }

  if (p.top_p < 1.f) {
    double total = 0;
    s.ids.clear();
    for (int64_t i = 0; i < V; ++i)
      if (s.keep[i]) total += w[i], s.ids.push_back(static_cast<int32_t>(i));
    auto before = [&](int32_t a, int32_t b) { return w[a] > w[b] || (w[a] == w[b] && a < b); };
    const int64_t n = s.ids.size();
    int64_t sorted = 0, kept = 0;
    double cum = 0;
    bool done = false;
    while (!done) {
      const int64_t upto = std::min<int64_t>(n, std::max<int64_t>(64, 4 * sorted));
      std::partial_sort(s.ids.begin() + sorted, s.ids.begin() + upto, s.ids.end(), before);
      for (; sorted < upto; ++sorted) {
        if (sorted > 0 && !(cum / total < p.top_p)) {
          done = true;
          break;
        }
        cum += w[s.ids[sorted]];
        ++kept;
      }
      if (sorted == n) done = true;
    }
    // ids[0..kept) stay; the rest of the candidates go.
    for (int64_t j = kept; j < n; ++j) s.keep[s.ids[j]] = 0;
  }

  double kept_total = 0;
  for (int64_t i = 0; i < V; ++i)
    if (s.keep[i]) kept_total += w[i];
  const double target = sampling_uniform(p.seed, stream, step) * kept_total;
  double cum = 0;
  int64_t last = -1;
  for (int64_t i = 0; i < V; ++i) {
    if (!s.keep[i]) continue;
    cum += w[i];
    last = i;
    if (cum > target) return static_cast<int32_t>(i);
  }
  return static_cast<int32_t>(last);
}
}  // namespace

void sample(const float* logits, int64_t ld_logits, int64_t rows, int64_t vocab, const SamplingParams* params,
            const uint64_t* stream, const uint64_t* step, int32_t* out) {
  if (vocab <= 0) throw std::invalid_argument("sample: vocab must be positive");
  // Exceptions must not leave an OpenMP region: note the first and rethrow.
  std::string error;
#pragma omp parallel if (rows > 1 && rows * vocab > (int64_t{1} << 16))
  {
    RowScratch s;
#pragma omp for schedule(dynamic, 1)
    for (int64_t r = 0; r < rows; ++r) {
      try {
        out[r] = sample_row(logits + r * ld_logits, vocab, params[r], stream[r], step[r], s);
      } catch (const std::exception& e) {
#pragma omp critical(ringscan_sample_error)
        if (error.empty()) error = e.what();
      }
    }
  }
  if (!error.empty()) throw std::invalid_argument(error);
}

}  // namespace ringscan::kernels::cpu
