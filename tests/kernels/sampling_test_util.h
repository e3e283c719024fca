// Inputs and checks shared by the sampling kernel tests (every backend:
// tests/kernels/test_sampling.cpp, tests/kernels_cuda/test_sampling_cuda.cpp).
#pragma once
#include <gtest/gtest.h>

#include <cmath>
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

}  // namespace ringscan::test
