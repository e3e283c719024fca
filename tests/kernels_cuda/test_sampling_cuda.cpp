// Sampling on the GPU against the plain-loop reference, mirroring
// tests/kernels/test_sampling.cpp.
//
// Greedy ids must be bitwise the reference's. Sampled ids use the same w and
// rules but sum w in another order, so they may differ from the reference's
// only when a top-p cut or the draw lies within double round-off of a
// boundary (sampling.h). The test inputs below are therefore checked with the
// reference's own arithmetic to stay at least kMinMargin (relative) away from
// every such boundary, and the test asserts that margin instead of skipping a
// row: it cannot be weakened silently, and a failure of the margin check
// means "choose other inputs", not "the kernel is wrong".
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>
#include <vector>

#include "cuda_test_util.h"
#include "kernels/sampling_test_util.h"
#include "sampling.h"

namespace ringscan::kernels {
namespace {

// Round-off of the two orders of summation: < V * 2^-53 ~ 1.5e-11 relative at
// vocab 131072 (the reference's serial sum, worst case), plus an ulp of exp.
// 1e-9 leaves a factor of ~70.
constexpr double kMinMargin = 1e-9;

// The relative distance from the reference's computed quantities to the
// boundaries they are compared with: every exclusive cumulative fraction of
// the top-p order vs top_p, and every cumulative kept w vs the draw's target
// (over the kept total). The minimum is attained next to the actual cut, so
// it measures how far the decision is from flipping. Infinity for greedy.
double ref_margin(const float* x, int64_t V, const SamplingParams& p, uint64_t stream,
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
  const double target = sampling_uniform(p.seed, stream, step) * kept_total;
  double cum = 0;
  for (int64_t i = 0; i < V; ++i) {
    if (!keep[i] || w[i] == 0) continue;
    cum += w[i];
    margin = std::min(margin, std::fabs(cum - target) / kept_total);
  }
  return margin;
}

// One row of host logits through the GPU (out is a host array).
int32_t one_cuda(const test::DeviceArray<float>& x, int64_t V, const SamplingParams& p,
                 uint64_t stream, uint64_t step) {
  int32_t out = -1;
  cuda::sample(x.get(), V, 1, V, &p, &stream, &step, &out);
  return out;
}

std::set<int32_t> support_cuda(const std::vector<float>& x, const SamplingParams& p,
                               int draws = 1000) {
  const test::DeviceArray<float> d(x);
  std::set<int32_t> s;
  for (int t = 0; t < draws; ++t) s.insert(one_cuda(d, static_cast<int64_t>(x.size()), p, 7, t));
  return s;
}

TEST(SamplingCuda, GreedyIsBitwiseTheReference) {
  for (int64_t V : {int64_t{1}, int64_t{7}, int64_t{50000}, int64_t{131072}}) {
    SCOPED_TRACE(testing::Message() << "vocab " << V);
    const int64_t rows = 6, ld = V + 5;
    std::vector<float> x = test::random_floats(rows * ld, 5 + V, -4.f, 4.f);
    for (int64_t r = 0; r < rows; ++r) {
      float* row = x.data() + r * ld;
      if (r % 2 == 0) {  // quantized: many exact ties, also at the maximum
        for (int64_t i = 0; i < V; ++i) row[i] = std::round(row[i] * 2) / 2;
      } else if (V > 3) {  // the maximum planted at three places
        const float mx = 4.5f;
        row[(r * 7919) % V] = mx, row[(r * 104729) % V] = mx, row[V - 1] = mx;
      }
      if (V > 3) row[3] = -INFINITY;
    }
    std::vector<SamplingParams> params(rows);  // temperature 0: greedy
    params[1].top_k = 3, params[2].top_p = 0.5f;  // ignored by greedy
    std::vector<uint64_t> stream(rows, 1), step(rows, 2);
    std::vector<int32_t> want(rows), got(rows, -5);
    ref::sample(x.data(), ld, rows, V, params.data(), stream.data(), step.data(), want.data());
    const test::DeviceArray<float> d(x);
    cuda::sample(d.get(), ld, rows, V, params.data(), stream.data(), step.data(), got.data());
    EXPECT_EQ(got, want);
  }
  const SamplingParams g;
  const auto greedy = [&](const std::vector<float>& x) {
    return one_cuda(test::DeviceArray<float>(x), static_cast<int64_t>(x.size()), g, 0, 0);
  };
  EXPECT_EQ(greedy({0.f, 3.f, -1.f, 3.f, 2.f}), 1);
  EXPECT_EQ(greedy({-INFINITY, -5.f, -INFINITY}), 1);
  EXPECT_EQ(greedy({4.f}), 0);
  EXPECT_THROW(greedy({-INFINITY, -INFINITY}), std::invalid_argument);
  EXPECT_THROW(greedy({1.f, INFINITY}), std::invalid_argument);  // the reference throws too
}

// Hand cases of the warpers: which ids can come out at all.
TEST(SamplingCuda, TopKAndTopPKeepTheRightIds) {
  test::expect_warpers_keep_the_right_ids(
      [](const std::vector<float>& x, const SamplingParams& p) { return support_cuda(x, p); });
  // Top-p cutting inside a group of tied logits keeps the lowest ids first:
  // five ids of probability 0.2 each; top_p 0.5 keeps the first three by id.
  SamplingParams t;
  t.temperature = 1.f, t.top_p = 0.5f;
  EXPECT_EQ(support_cuda({0.f, -9.f, 0.f, 0.f, -9.f, 0.f, 0.f}, t).size(), 3u);
  EXPECT_EQ(support_cuda({0.f, -9.f, 0.f, 0.f, -9.f, 0.f, 0.f}, t), (std::set<int32_t>{0, 2, 3}));
}

struct BatchCase {
  int64_t rows, vocab, ld;
  float spread;
  bool quantized;  // many exact ties
};

using Batch = test::SamplingBatch;

// Logits in [-spread, spread] (id 3 at -inf), and per row a temperature /
// top-k / top-p combination with fixed seeds, streams and steps.
Batch make_batch(const BatchCase& c) {
  Batch b;
  b.x = test::random_floats(c.rows * c.ld, 11 + c.vocab, -c.spread, c.spread);
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

const BatchCase kBatchCases[] = {{8, 1, 1, 1.f, false},           {64, 7, 9, 2.f, true},
                                 {32, 50000, 50003, 4.f, false},  {16, 50000, 50000, 1.f, true},
                                 {16, 131072, 131072, 8.f, false}};

// Temperature / top-k / top-p combinations over a batch with fixed seeds:
// the GPU's ids equal the reference's on every row.
TEST(SamplingCuda, SampledIdsMatchReference) {
  for (const BatchCase& c : kBatchCases) {
    SCOPED_TRACE(testing::Message() << "rows " << c.rows << " vocab " << c.vocab);
    const Batch b = make_batch(c);
    for (int64_t r = 0; r < c.rows; ++r)
      ASSERT_GT(ref_margin(b.x.data() + r * c.ld, c.vocab, b.params[r], b.stream[r], b.step[r]),
                kMinMargin)
          << "row " << r << ": the test input is too close to a boundary; change the inputs";
    std::vector<int32_t> want(c.rows), got(c.rows, -5);
    ref::sample(b.x.data(), c.ld, c.rows, c.vocab, b.params.data(), b.stream.data(), b.step.data(),
                want.data());
    const test::DeviceArray<float> d(b.x);
    cuda::sample(d.get(), c.ld, c.rows, c.vocab, b.params.data(), b.stream.data(), b.step.data(),
                 got.data());
    EXPECT_EQ(got, want);
  }
}

// Many draws of one row with top-p over a large vocabulary (deep cuts).
TEST(SamplingCuda, ManyTopPDrawsMatchReference) {
  const int64_t V = 50000;
  const std::vector<float> x = test::random_floats(V, 77, -4.f, 4.f);
  const test::DeviceArray<float> d(x);
  for (int t = 0; t < 60; ++t) {
    SamplingParams p;
    p.temperature = 1.5f, p.top_p = 0.95f, p.seed = t, p.top_k = t % 3 == 0 ? 20000 : 0;
    ASSERT_GT(ref_margin(x.data(), V, p, 3, t), kMinMargin) << "draw " << t << ": change the inputs";
    int32_t want = -1;
    const uint64_t stream = 3, step = t;
    ref::sample(x.data(), V, 1, V, &p, &stream, &step, &want);
    ASSERT_EQ(one_cuda(d, V, p, stream, step), want) << "draw " << t;
  }
}

TEST(SamplingCuda, IndependentOfBatchComposition) {
  test::expect_independent_of_batch_composition(
      [](const Batch& b, int64_t ld, int64_t rows, int64_t V) {
        std::vector<int32_t> ids(rows);
        const test::DeviceArray<float> d(b.x);
        cuda::sample(d.get(), ld, rows, V, b.params.data(), b.stream.data(), b.step.data(),
                     ids.data());
        return ids;
      },
      [](const std::vector<float>& row, const SamplingParams& p, uint64_t stream,
         uint64_t step) {
        return one_cuda(test::DeviceArray<float>(row), static_cast<int64_t>(row.size()), p,
                        stream, step);
      });
}

TEST(SamplingCuda, RejectsEmptyVocabulary) {
  SamplingParams p;
  uint64_t s = 0;
  int32_t out = 0;
  EXPECT_THROW(cuda::sample(nullptr, 0, 1, 0, &p, &s, &s, &out), std::invalid_argument);
}

}  // namespace
}  // namespace ringscan::kernels
