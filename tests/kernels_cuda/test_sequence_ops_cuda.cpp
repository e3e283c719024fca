// rope, causal_conv1d and log_softmax on the GPU against the plain-loop references.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "causal_conv1d.h"
#include "cuda_test_util.h"
#include "log_softmax.h"
#include "rope.h"

namespace ringscan::kernels {
namespace {

constexpr double kU = std::numeric_limits<float>::epsilon() / 2;  // 2^-24

// Both sides evaluate the same double formulas from the same floats; device
// and host libm differ by an ulp of double at most, so outputs agree to the
// final fp32 rounding (1 ulp when a result lies near a rounding boundary).
// 1e-6 relative + 1e-7 absolute (cancellation in x1*c - x2*s, |x| <= 1).
TEST(RopeCuda, MatchesReference) {
  struct Case { int64_t rows, heads, head_dim, rotary_dim, ld_x, pos0; };
  for (Case c : {Case{1, 1, 2, 2, 2, 0}, Case{33, 8, 128, 128, 8 * 128 + 40 * 128, 0},
                 Case{19, 5, 64, 32, 5 * 64, 1000000}}) {
    SCOPED_TRACE(testing::Message() << "rows " << c.rows << " heads " << c.heads << " rotary "
                                    << c.rotary_dim << " pos0 " << c.pos0);
    const std::vector<float> x = test::random_floats(c.rows * c.ld_x, 71);
    std::vector<float> expect = x;
    ref::rope(expect.data(), c.ld_x, c.rows, c.heads, c.head_dim, c.rotary_dim, c.pos0, 10000.f);
    test::DeviceArray<float> d_x(x);
    cuda::rope(d_x.get(), c.ld_x, c.rows, c.heads, c.head_dim, c.rotary_dim, c.pos0, 10000.f);
    // The whole buffer: rotated part, pass-through channels and the columns past heads*head_dim.
    EXPECT_TRUE(test::all_close(d_x.download(), expect, 1e-7, 1e-6));
  }
}

// K taps summed in fp32 against double: <= K * 2^-24 * sum|w x| (<= ~2.4e-6
// here) plus a few ulp from silu; 1e-5 relative + 1e-6 absolute covers it.
TEST(CausalConv1dCuda, MatchesReference) {
  struct Case { int64_t rows, channels, K, ld_x; bool history, bias, silu; };
  for (Case c : {Case{1, 1, 1, 1, false, false, false}, Case{1, 64, 4, 64, true, true, true},
                 Case{37, 300, 4, 512, false, true, true}, Case{37, 300, 4, 300, true, false, false},
                 Case{2, 96, 4, 96, true, true, true}, Case{9, 50, 7, 60, true, true, true}}) {
    for (DType dt : test::kAllDTypes) {
      SCOPED_TRACE(testing::Message() << dtype_name(dt) << " rows " << c.rows << " channels "
                                      << c.channels << " K " << c.K << " history " << c.history
                                      << " bias " << c.bias << " silu " << c.silu);
      const std::vector<float> x = test::random_floats(c.rows * c.ld_x, 81, -2.f, 2.f),
                               hist = test::random_floats((c.K - 1) * c.channels, 82, -2.f, 2.f);
      const test::TestWeight w = test::random_weight(dt, c.channels, c.K, 83),
                             b = test::random_weight(dt, 1, c.channels, 84);
      const WeightView no_bias{};
      std::vector<float> expect(c.rows * c.channels);
      ref::causal_conv1d(x.data(), c.ld_x, c.rows, c.channels, c.history ? hist.data() : nullptr,
                         w.view(), c.bias ? b.view() : no_bias, c.silu, expect.data());
      test::DeviceWeight d_w(w), d_b(b);
      test::DeviceArray<float> d_x(x), d_hist(hist), d_out(c.rows * c.channels);
      cuda::causal_conv1d(d_x.get(), c.ld_x, c.rows, c.channels, c.history ? d_hist.get() : nullptr,
                          d_w.view(), c.bias ? d_b.view() : no_bias, c.silu, d_out.get());
      EXPECT_TRUE(test::all_close(d_out.download(), expect, 1e-6, 1e-5));
    }
  }
}

// Absolute error of out = x - (max + log(sum)): the fp32 sum of exp terms has
// relative error <= (vocab/512 + 9) * 2^-24 (see log_softmax.cu), which is the
// absolute error of log(sum); expf adds <= 2 ulp per term (relative, so
// 2 * 2^-24 on the sum); x - max rounds at |x - max| <= |out|, which moves
// that term's exp by <= |out| * 2^-24 relative; the final subtractions round
// at |lse| and |out|. Summed, with |out| counted twice.
double log_softmax_atol(int64_t vocab, double max_abs_out, double max_abs_lse) {
  return (vocab / 512.0 + 9 + 2) * kU + 2 * kU * (max_abs_lse + max_abs_out);
}

TEST(LogSoftmaxCuda, MatchesReference) {
  struct Case { int64_t rows, vocab; float lo, hi; };
  for (Case c : {Case{1, 1, -1.f, 1.f}, Case{3, 1000, -10.f, 10.f}, Case{7, 32768, -20.f, 20.f},
                 Case{2, 131072, -15.f, 15.f}, Case{2, 5000, 990.f, 1010.f}}) {
    SCOPED_TRACE(testing::Message() << "rows " << c.rows << " vocab " << c.vocab << " range "
                                    << c.lo << ".." << c.hi);
    std::vector<float> x = test::random_floats(c.rows * c.vocab, 91, c.lo, c.hi);
    if (c.vocab > 10) x[3] = -INFINITY;  // a masked logit: exactly -inf out
    std::vector<float> expect(x.size());
    ref::log_softmax(x.data(), c.rows, c.vocab, expect.data());
    double max_out = 0, max_lse = 0;
    for (size_t i = 0; i < x.size(); ++i)
      if (std::isfinite(expect[i])) {
        max_out = std::max(max_out, std::fabs(double(expect[i])));
        max_lse = std::max(max_lse, std::fabs(double(x[i]) - expect[i]));
      }
    const double atol = log_softmax_atol(c.vocab, max_out, max_lse);
    test::DeviceArray<float> d_x(x), d_out(x.size());
    cuda::log_softmax(d_x.get(), c.rows, c.vocab, d_out.get());
    EXPECT_TRUE(test::all_close(d_out.download(), expect, atol, 0));
    cuda::log_softmax(d_x.get(), c.rows, c.vocab, d_x.get());  // in place
    EXPECT_TRUE(test::all_close(d_x.download(), expect, atol, 0));
  }
}

// Scoring: the same row statistics as log_softmax, one entry per row, so the
// same tolerance as above.
TEST(TokenLogProbCuda, MatchesReference) {
  for (int64_t vocab : {int64_t{1}, int64_t{1000}, int64_t{131072}}) {
    SCOPED_TRACE(testing::Message() << "vocab " << vocab);
    const int64_t rows = 9;
    const std::vector<float> x = test::random_floats(rows * vocab, 92, -15.f, 15.f);
    std::vector<int32_t> targets(rows);
    for (int64_t r = 0; r < rows; ++r) targets[r] = static_cast<int32_t>((r * 7919 + 5) % vocab);
    targets[1] = static_cast<int32_t>(vocab - 1);
    std::vector<float> expect(rows);
    ref::token_log_prob(x.data(), rows, vocab, targets.data(), expect.data());
    double max_out = 0;
    for (float e : expect) max_out = std::max(max_out, std::fabs(double(e)));
    const double atol = log_softmax_atol(vocab, max_out, 30.0);
    test::DeviceArray<float> d_x(x), d_out(rows);
    test::DeviceArray<int32_t> d_t(targets);
    cuda::token_log_prob(d_x.get(), rows, vocab, d_t.get(), d_out.get());
    EXPECT_TRUE(test::all_close(d_out.download(), expect, atol, 0));
  }
}

}  // namespace
}  // namespace ringscan::kernels
