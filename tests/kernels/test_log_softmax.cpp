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

TEST(LogSoftmax, CpuMatchesReference) {
  struct Case {
    int64_t rows, vocab;
    float lo, hi;
  };
  for (const Case c :
       {Case{1, 1, -1.f, 1.f}, Case{1, 131072, -15.f, 15.f}, Case{3, 1001, -5.f, 5.f},
        Case{17, 4096, 990.f, 1010.f},  // large logits: needs the max subtracted
        Case{2, 50, -200.f, 0.f}}) {    // terms that underflow exp
    SCOPED_TRACE(testing::Message() << "rows " << c.rows << " vocab " << c.vocab << " range ["
                                    << c.lo << ", " << c.hi << "]");
    std::vector<float> x = test::random_floats(c.rows * c.vocab, 1, c.lo, c.hi);
    std::vector<float> expect(x.size()), got(x.size());
    ref::log_softmax(x.data(), c.rows, c.vocab, expect.data());
    cpu::log_softmax(x.data(), c.rows, c.vocab, got.data());
    EXPECT_TRUE(test::all_close(got, expect, kAtol, kRtol));
    cpu::log_softmax(x.data(), c.rows, c.vocab, x.data());  // in place
    EXPECT_TRUE(test::all_close(x, got, 0, 0));
    // Each row of the reference is a distribution: sum exp(out) = 1.
    for (int64_t r = 0; r < c.rows; ++r) {
      double s = 0;
      for (int64_t i = 0; i < c.vocab; ++i) s += std::exp(double(expect[r * c.vocab + i]));
      EXPECT_NEAR(s, 1.0, 1e-5);
    }
  }
}

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
