#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernel_test_util.h"
#include "log_softmax.h"

namespace ringscan::kernels {
namespace {

// The reference in double. The fast version: x - max is exact or one
// rounding (<= 0.5 ulp of the result), the log-sum comes from a vectorised
// exp (~2 ulp per term) summed in double (relative error ~2 ulp -> 1.2e-7
// absolute after the log), then one subtraction. For |out| up to ~40 the ulp
// is 3.8e-6, hence 1e-6 absolute plus 2e-7 relative (about 3.5 ulp).
constexpr double kAtol = 1e-6, kRtol = 2e-7;

// By hand: logits [0, ln 3] -> probabilities [1/4, 3/4].
TEST(LogSoftmax, ReferenceHandCase) {
  const float x[2] = {0.f, std::log(3.f)};
  float out[2];
  ref::log_softmax(x, 1, 2, out);
  EXPECT_FLOAT_EQ(out[0], std::log(0.25f));
  EXPECT_FLOAT_EQ(out[1], std::log(0.75f));
}

// Scoring picks one entry of each row: the reference's is its log_softmax
// entry by construction; the fast one must equal its own log_softmax entry
// bit for bit (same expression) and the reference within the tolerance above.
TEST(TokenLogProb, CpuMatchesLogSoftmaxEntries) {
  for (int64_t vocab : {int64_t{1}, int64_t{1001}, int64_t{131072}}) {
    SCOPED_TRACE(testing::Message() << "vocab " << vocab);
    const int64_t rows = 5;
    const std::vector<float> x = test::random_floats(rows * vocab, 8, -12.f, 12.f);
    std::vector<int32_t> targets(rows);
    for (int64_t r = 0; r < rows; ++r) targets[r] = static_cast<int32_t>((r * 7919 + 13) % vocab);
    targets[0] = static_cast<int32_t>(vocab - 1);
    std::vector<float> full(x.size()), expect(rows), got(rows), ref_full(x.size());
    cpu::log_softmax(x.data(), rows, vocab, full.data());
    ref::log_softmax(x.data(), rows, vocab, ref_full.data());
    ref::token_log_prob(x.data(), rows, vocab, targets.data(), expect.data());
    cpu::token_log_prob(x.data(), rows, vocab, targets.data(), got.data());
    for (int64_t r = 0; r < rows; ++r) {
      EXPECT_EQ(got[r], full[r * vocab + targets[r]]) << "row " << r;
      EXPECT_EQ(expect[r], ref_full[r * vocab + targets[r]]) << "row " << r;
    }
    EXPECT_TRUE(test::all_close(got, expect, kAtol, kRtol));
  }
}

}  // namespace
}  // namespace ringscan::kernels
