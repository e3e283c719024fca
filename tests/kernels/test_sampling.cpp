#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <stdexcept>
#include <vector>

#include "kernel_test_util.h"
#include "kernels/sampling_test_util.h"
#include "sampling.h"

namespace ringscan::kernels {
namespace {

using Sampler = void (*)RINGSCAN_SAMPLE_SIG;

int32_t one(Sampler f, const std::vector<float>& x, const SamplingParams& p, uint64_t stream, uint64_t step) {
  int32_t out = -1;
  f(x.data(), 0, 1, static_cast<int64_t>(x.size()), &p, &stream, &step, &out);
  return out;
}

// The ids a setting can produce, found by drawing many times.
std::set<int32_t> support(Sampler f, const std::vector<float>& x, const SamplingParams& p, int draws = 2000) {
  std::set<int32_t> s;
  for (int t = 0; t < draws; ++t) s.insert(one(f, x, p, 7, t));
  return s;
}

// Random123's published known-answer vectors (its tests/kat_vectors).
TEST(Sampling, PhiloxKnownAnswers) {
  using A4 = std::array<uint32_t, 4>;
  EXPECT_EQ(philox4x32_10({0, 0, 0, 0}, {0, 0}), (A4{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  EXPECT_EQ(philox4x32_10({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}),
            (A4{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  EXPECT_EQ(philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}),
            (A4{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

TEST(Sampling, UniformIsInRangeAndDependsOnEveryKey) {
  double lo = 1, hi = 0, sum = 0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    double u = sampling_uniform(1, 2, i);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    lo = std::min(lo, u), hi = std::max(hi, u), sum += u;
  }
  // Mean of n uniforms: sd 1/sqrt(12 n) = 9e-4; 5 sd.
  EXPECT_NEAR(sum / n, 0.5, 5 * 9.2e-4);
  EXPECT_LT(lo, 1e-3);
  EXPECT_GT(hi, 1 - 1e-3);
  EXPECT_NE(sampling_uniform(1, 2, 3), sampling_uniform(2, 2, 3));
  EXPECT_NE(sampling_uniform(1, 2, 3), sampling_uniform(1, 3, 3));
  EXPECT_NE(sampling_uniform(1, 2, 3), sampling_uniform(1, 2, 4));
  EXPECT_NE(sampling_uniform(1, uint64_t{1} << 40, 3), sampling_uniform(1, 0, 3));  // high bits count
  EXPECT_EQ(sampling_uniform(9, 8, 7), sampling_uniform(9, 8, 7));
}

TEST(Sampling, GreedyIsArgmaxLowestIdOnTies) {
  for (Sampler f : {Sampler(ref::sample), Sampler(cpu::sample)}) {
    SamplingParams g;  // temperature 0
    EXPECT_EQ(one(f, {0.f, 3.f, -1.f, 3.f, 2.f}, g, 0, 0), 1);
    EXPECT_EQ(one(f, {-INFINITY, -5.f, -INFINITY}, g, 0, 0), 1);
    EXPECT_EQ(one(f, {4.f}, g, 0, 0), 0);
    // Not finite at the top: kSampleNonFinite for that row, the other rows drawn as usual.
    EXPECT_EQ(one(f, {-INFINITY, -INFINITY}, g, 0, 0), kSampleNonFinite);
    EXPECT_EQ(one(f, {1.f, INFINITY}, g, 0, 0), kSampleNonFinite);
    EXPECT_EQ(one(f, {NAN, 1.f}, g, 0, 0), 1);  // NaN counts as -inf
    EXPECT_EQ(one(f, {NAN, NAN}, g, 0, 0), kSampleNonFinite);
    const float rows[2][3] = {{0.f, NAN, 1.f}, {NAN, NAN, NAN}};
    const SamplingParams ps[2] = {g, g};
    const uint64_t st[2] = {0, 1}, sp[2] = {0, 0};
    int32_t ids[2] = {-5, -5};
    f(&rows[0][0], 3, 2, 3, ps, st, sp, ids);
    EXPECT_EQ(ids[0], 2);
    EXPECT_EQ(ids[1], kSampleNonFinite);
  }
}

// Hand cases of the warpers: which ids can come out at all.
TEST(Sampling, TopKAndTopPKeepTheRightIds) {
  for (Sampler f : {Sampler(ref::sample), Sampler(cpu::sample)}) {
    SCOPED_TRACE(f == Sampler(ref::sample) ? "ref" : "cpu");
    test::expect_warpers_keep_the_right_ids(
        [&](const std::vector<float>& x, const SamplingParams& p) { return support(f, x, p); });
  }
}

// The reference's draws follow softmax(x / T) (restricted and renormalised):
// frequencies over 40000 deterministic draws within 5 standard deviations.
TEST(Sampling, ReferenceFrequenciesFollowTheDistribution) {
  const std::vector<float> x = {0.5f, -1.f, 2.f, 1.f, 0.f, -3.f};
  struct Case {
    float T;
    int k;
    float p;
  };
  for (const Case c : {Case{1.f, 0, 1.f}, Case{0.5f, 0, 1.f}, Case{2.f, 3, 1.f}, Case{1.f, 0, 0.8f}}) {
    SCOPED_TRACE(testing::Message() << "T " << c.T << " k " << c.k << " p " << c.p);
    SamplingParams sp;
    sp.temperature = c.T, sp.top_k = c.k, sp.top_p = c.p, sp.seed = 123;
    // The expected distribution, by the definition.
    std::vector<double> w(x.size());
    double z = 0;
    for (size_t i = 0; i < x.size(); ++i) z += (w[i] = std::exp(x[i] / c.T));
    std::vector<size_t> order(x.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return w[a] > w[b]; });
    std::vector<double> prob(x.size(), 0.0);
    double cum = 0, kept = 0;
    for (size_t j = 0; j < order.size(); ++j) {
      // (No case combines top-k with top-p: then top-p would see only the top-k mass.)
      bool keep = (c.k == 0 || static_cast<int>(j) < c.k) && (j == 0 || cum / z < c.p);
      cum += w[order[j]];
      if (keep) prob[order[j]] = w[order[j]], kept += w[order[j]];
    }
    for (auto& v : prob) v /= kept;
    const int n = 40000;
    std::vector<int> count(x.size(), 0);
    for (int t = 0; t < n; ++t) ++count[one(ref::sample, x, sp, 5, t)];
    for (size_t i = 0; i < x.size(); ++i) {
      const double sd = std::sqrt(prob[i] * (1 - prob[i]) / n);
      EXPECT_NEAR(count[i] / double(n), prob[i], 5 * sd + 1e-12) << "id " << i;
    }
  }
}

TEST(Sampling, IndependentOfBatchComposition) {
  test::expect_independent_of_batch_composition(
      [](const test::SamplingBatch& b, int64_t ld, int64_t rows, int64_t V) {
        std::vector<int32_t> ids(rows);
        cpu::sample(b.x.data(), ld, rows, V, b.params.data(), b.stream.data(), b.step.data(),
                    ids.data());
        return ids;
      },
      [](const std::vector<float>& row, const SamplingParams& p, uint64_t stream,
         uint64_t step) { return one(cpu::sample, row, p, stream, step); });
}

}  // namespace
}  // namespace ringscan::kernels
