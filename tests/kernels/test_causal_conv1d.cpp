#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "causal_conv1d.h"
#include "kernel_test_util.h"

namespace ringscan::kernels {
namespace {

// Reference in double. The fast version sums K + 1 <= 5 terms of magnitude
// <= 1 in fp32 (error <= 5 * 5 * 2^-24 ~ 1.5e-6), then silu in fp32 (a few
// ulp; its slope is below 1.1). 1e-5 absolute + relative leaves margin while
// a tap read from the wrong row is an O(0.1) error.
constexpr double kTol = 1e-5;

// Sequence-parallel property: convolving a sequence in two pieces, the second
// with the last K-1 rows of the first as history, equals one pass over all of
// it (this is what the conv halo exchange relies on). Also checks the
// reference against a hand-computed tap sum.
TEST(CausalConv1d, SplitWithHistoryEqualsWhole) {
  const int64_t rows = 11, C = 6, K = 4;
  const std::vector<float> x = test::random_floats(rows * C, 5);
  const test::TestWeight w = test::random_weight(DType::F32, C, K, 6);
  const test::TestWeight b = test::random_weight(DType::F32, 1, C, 7);
  std::vector<float> whole(rows * C);
  ref::causal_conv1d(x.data(), C, rows, C, nullptr, w.view(), b.view(), false, whole.data());
  // Row 5, channel 2 by hand: bias + sum_j w[2, j] * x[5 - 3 + j, 2].
  double by_hand = b.values[2];
  for (int64_t j = 0; j < K; ++j) by_hand += double(w.values[2 * K + j]) * x[(2 + j) * C + 2];
  EXPECT_NEAR(whole[5 * C + 2], by_hand, 1e-6);

  for (int64_t split : {1, 2, 3, 7}) {  // split 1, 2: the first piece is shorter than K - 1
    // History: the K-1 rows before `split`, zeros where they fall before row 0.
    std::vector<float> hist((K - 1) * C, 0.f);
    for (int64_t r = 0; r < K - 1; ++r) {
      const int64_t src = split - (K - 1) + r;
      if (src >= 0)
        for (int64_t c = 0; c < C; ++c) hist[r * C + c] = x[src * C + c];
    }
    std::vector<float> first(split * C), second((rows - split) * C);
    cpu::causal_conv1d(x.data(), C, split, C, nullptr, w.view(), b.view(), false, first.data());
    cpu::causal_conv1d(x.data() + split * C, C, rows - split, C, hist.data(), w.view(), b.view(),
                       false, second.data());
    first.insert(first.end(), second.begin(), second.end());
    EXPECT_TRUE(test::all_close(first, whole, kTol, kTol)) << "split " << split;
  }
}

TEST(CausalConv1d, CpuRejectsMismatchedWeight) {
  const std::vector<float> x(8, 1.f), w(12, 1.f);
  std::vector<float> out(8);
  // weight [3, 4] for 4 channels
  EXPECT_THROW(cpu::causal_conv1d(x.data(), 4, 2, 4, nullptr, f32_view(w.data(), 3, 4),
                                  WeightView{}, true, out.data()),
               std::invalid_argument);
}

}  // namespace
}  // namespace ringscan::kernels
