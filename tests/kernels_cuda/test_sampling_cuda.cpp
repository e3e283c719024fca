// Sampling on the GPU: hand cases of the warpers, greedy by hand, batch
// independence and argument checks, mirroring tests/kernels/test_sampling.cpp.
// Its ids against the reference's on the shared cases are op cases of
// tests/backend_ops/ops_sampling.cpp.
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

// Greedy by hand: the lowest id of the maximum; masked logits are never chosen.
TEST(SamplingCuda, GreedyHandCases) {
  const SamplingParams g;
  const auto greedy = [&](const std::vector<float>& x) {
    return one_cuda(test::DeviceArray<float>(x), static_cast<int64_t>(x.size()), g, 0, 0);
  };
  EXPECT_EQ(greedy({0.f, 3.f, -1.f, 3.f, 2.f}), 1);
  EXPECT_EQ(greedy({-INFINITY, -5.f, -INFINITY}), 1);
  EXPECT_EQ(greedy({4.f}), 0);
  // Not finite at the top: kSampleNonFinite for that row (the reference's too).
  EXPECT_EQ(greedy({-INFINITY, -INFINITY}), kSampleNonFinite);
  EXPECT_EQ(greedy({1.f, INFINITY}), kSampleNonFinite);
  EXPECT_EQ(greedy({NAN, 1.f}), 1);  // NaN counts as -inf
  EXPECT_EQ(greedy({NAN, NAN}), kSampleNonFinite);
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
