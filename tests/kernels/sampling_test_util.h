// Inputs and checks shared by the sampling kernel tests (every backend:
// tests/backend_ops/ops_sampling.cpp, tests/kernels/test_sampling.cpp,
// tests/kernels_cuda/test_sampling_cuda.cpp).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <cstdint>
#include <set>
#include <vector>

#include "kernels/kernel_test_util.h"
#include "sampling.h"

namespace ringscan::test {

// Logits [rows, ld] on the host and, per row, its parameters, stream and step.
struct SamplingBatch {
  std::vector<float> x;
  std::vector<kernels::SamplingParams> params;
  std::vector<uint64_t> stream, step;
};

// Hand cases of the warpers: which ids can come out at all. support(x, p)
// returns the set of ids a backend drew for logits x (a std::vector<float>)
// under p, over enough draws to see every id kept.
template <class Support>
void expect_warpers_keep_the_right_ids(Support support) {
  using kernels::SamplingParams;
  // Probabilities 0.5, 0.3, 0.15, 0.05 at ids 2, 0, 3, 1.
  const std::vector<float> x = {std::log(0.3f), std::log(0.05f), std::log(0.5f), std::log(0.15f)};
  SamplingParams p;
  p.temperature = 1.f;
  EXPECT_EQ(support(x, p), (std::set<int32_t>{0, 1, 2, 3}));
  p.top_k = 2;
  EXPECT_EQ(support(x, p), (std::set<int32_t>{0, 2}));
  p.top_k = 1;
  EXPECT_EQ(support(x, p), (std::set<int32_t>{2}));
  p.top_k = 0;
  p.top_p = 0.4f;  // 0.5 alone reaches it
  EXPECT_EQ(support(x, p), (std::set<int32_t>{2}));
  p.top_p = 0.7f;  // 0.5 + 0.3
  EXPECT_EQ(support(x, p), (std::set<int32_t>{0, 2}));
  p.top_p = 0.9f;  // 0.5 + 0.3 + 0.15
  EXPECT_EQ(support(x, p), (std::set<int32_t>{0, 2, 3}));
  p.top_p = 0.f;  // at least one id
  EXPECT_EQ(support(x, p), (std::set<int32_t>{2}));
  p.top_p = 0.9f, p.top_k = 2;  // top-k first, then top-p over what is left: 0.5/0.8, 0.3/0.8
  EXPECT_EQ(support(x, p), (std::set<int32_t>{0, 2}));
  p.top_p = 0.6f;  // 0.625 alone reaches it
  EXPECT_EQ(support(x, p), (std::set<int32_t>{2}));
  // Ties at the k-th logit are all kept (HF's top-k).
  SamplingParams q;
  q.temperature = 1.f, q.top_k = 2;
  EXPECT_EQ(support(std::vector<float>{1.f, 2.f, 1.f, 0.f, 1.f}, q),
            (std::set<int32_t>{0, 1, 2, 4}));
}

// A row's id depends on (seed, stream, step) and the row only: not on its
// place in the batch nor on the other rows, nor on the leading dimension.
// sample_batch(batch, ld, rows, vocab) returns a backend's ids for a whole
// batch; sample_one(row, params, stream, step) its id for one contiguous row.
template <class SampleBatch, class SampleOne>
void expect_independent_of_batch_composition(SampleBatch sample_batch, SampleOne sample_one) {
  const int64_t V = 300, rows = 6, ld = V + 5;
  SamplingBatch b;
  b.x = random_floats(rows * ld, 99, -3.f, 3.f);
  b.params.resize(rows);
  b.stream.resize(rows);
  b.step.resize(rows);
  for (int64_t r = 0; r < rows; ++r) {
    b.params[r].temperature = 1.f, b.params[r].top_p = 0.9f, b.params[r].seed = 42;
    b.stream[r] = 100 + r, b.step[r] = 3;
  }
  const std::vector<int32_t> batch = sample_batch(b, ld, rows, V);
  for (int64_t r = rows - 1; r >= 0; --r) {  // alone, in reverse order, contiguous copy
    const std::vector<float> row(b.x.begin() + r * ld, b.x.begin() + r * ld + V);
    EXPECT_EQ(sample_one(row, b.params[r], b.stream[r], b.step[r]), batch[r]) << "row " << r;
  }
  // Different streams (documents) with identical logits do not move in lockstep.
  const std::vector<float> row(b.x.begin(), b.x.begin() + V);
  std::set<int32_t> seen;
  for (uint64_t s = 0; s < 50; ++s) seen.insert(sample_one(row, b.params[0], s, 0));
  EXPECT_GT(seen.size(), 5u);
}

// Sampled ids of a backend that sums the weights in another order than the
// reference (cuda) may differ from the reference's only where a top-p cut or
// the draw lies within round-off of a boundary: test inputs must keep at least
// this relative margin, checked with the reference's own arithmetic
// (sampling_ref_margin), so that the check cannot be weakened silently. The
// round-off of two orders of summation is < V * 2^-53 ~ 1.5e-11 relative at
// vocab 131072 (the reference's serial sum, worst case), plus an ulp of exp:
// 1e-9 leaves a factor of ~70.
inline constexpr double kSamplingMinMargin = 1e-9;

// The relative distance from the reference's computed quantities to the
// boundaries they are compared with: every exclusive cumulative fraction of
// the top-p order vs top_p, and every cumulative kept w vs the draw's target
// (over the kept total). The minimum is attained next to the actual cut, so
// it measures how far the decision is from flipping. Infinity for greedy.
inline double sampling_ref_margin(const float* x, int64_t V, const kernels::SamplingParams& p, uint64_t stream,
                                  uint64_t step) {
  if (p.temperature <= 0.f) return INFINITY;
  int64_t best = 0;
  for (int64_t i = 1; i < V; ++i)
    if (x[i] > x[best]) best = i;
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
  double margin = INFINITY;
  if (p.top_p < 1.f) {
    double total = 0;
    std::vector<int64_t> order;
    for (int64_t i = 0; i < V; ++i)
      if (keep[i]) total += w[i], order.push_back(i);
    std::sort(order.begin(), order.end(),
              [&](int64_t a, int64_t b) { return w[a] > w[b] || (w[a] == w[b] && a < b); });
    double cum = 0;
    for (size_t j = 0; j < order.size(); ++j) {
      if (j > 0) margin = std::min(margin, std::fabs(cum / total - p.top_p));
      keep[order[j]] = j == 0 || cum / total < p.top_p;
      cum += w[order[j]];
    }
  }
  double kept_total = 0;
  for (int64_t i = 0; i < V; ++i)
    if (keep[i]) kept_total += w[i];
  const double target = kernels::sampling_uniform(p.seed, stream, step) * kept_total;
  double cum = 0;
  for (int64_t i = 0; i < V; ++i) {
    if (!keep[i] || w[i] == 0) continue;
    cum += w[i];
    margin = std::min(margin, std::fabs(cum - target) / kept_total);
  }
  return margin;
}

struct SamplingBatchCase {
  int64_t rows, vocab, ld;
  float spread;
  bool quantized;  // many exact ties
};

// Logits [rows, ld] in [-spread, spread] (id 3 at -inf), and per row a temperature /
// top-k / top-p combination with fixed seeds, streams and steps.
inline SamplingBatch make_sampling_batch(const SamplingBatchCase& c) {
  SamplingBatch b;
  b.x = random_floats(c.rows * c.ld, 11 + c.vocab, -c.spread, c.spread);
  if (c.quantized)
    for (auto& v : b.x) v = std::round(v * 2) / 2;
  if (c.vocab > 3) b.x[3] = -INFINITY;
  b.params.resize(c.rows);
  b.stream.resize(c.rows);
  b.step.resize(c.rows);
  const float temps[] = {0.f, 0.3f, 1.f, 1.7f};
  const int ks[] = {0, 1, 5, 50, 1000};
  const float ps[] = {1.f, 0.9f, 0.5f, 0.05f};
  for (int64_t r = 0; r < c.rows; ++r) {
    b.params[r].temperature = temps[r % 4];
    b.params[r].top_k = ks[(r / 4) % 5];
    b.params[r].top_p = ps[(r / 2 + r / 8) % 4];
    b.params[r].seed = 1000 + r % 3;
    b.stream[r] = r * 17, b.step[r] = r % 5;
  }
  return b;
}

}  // namespace ringscan::test
