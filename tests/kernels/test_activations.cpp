#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "activations.h"
#include "kernel_test_util.h"

namespace ringscan::kernels {
namespace {

TEST(ReluSquared, CpuMatchesReferenceExactly) {
  // r * r is one correctly rounded fp32 multiply in both versions (the
  // reference's double product of two floats is exact, then rounded once).
  for (int64_t n : {1, 7, 100003}) {
    std::vector<float> a = test::random_floats(n, 1, -10.f, 10.f);
    std::vector<float> b = a;
    ref::relu_squared(a.data(), n);
    cpu::relu_squared(b.data(), n);
    EXPECT_TRUE(test::all_close(b, a, 0, 0)) << "n " << n;
  }
  float hand[3] = {-2.f, 0.f, 3.f};
  ref::relu_squared(hand, 3);
  EXPECT_EQ(hand[0], 0.f);
  EXPECT_EQ(hand[1], 0.f);
  EXPECT_EQ(hand[2], 9.f);
}

// silu in fp32: exp (<= 1 ulp in glibc), add, divide, multiply: a few ulp,
// no cancellation anywhere, so 1e-6 relative.
constexpr double kSiluRtol = 1e-6;

TEST(SiluMul, CpuMatchesReference) {
  for (int64_t n : {1, 7, 100003}) {
    SCOPED_TRACE(testing::Message() << "n " << n);
    const std::vector<float> gate = test::random_floats(n, 1, -20.f, 20.f);
    const std::vector<float> up = test::random_floats(n, 2, -3.f, 3.f);
    std::vector<float> expect(n), got(n);
    ref::silu_mul(gate.data(), up.data(), n, expect.data());
    cpu::silu_mul(gate.data(), up.data(), n, got.data());
    EXPECT_TRUE(test::all_close(got, expect, 1e-30, kSiluRtol));
    std::vector<float> g2 = gate, u2 = up;  // out aliasing gate, then up
    cpu::silu_mul(g2.data(), up.data(), n, g2.data());
    cpu::silu_mul(gate.data(), u2.data(), n, u2.data());
    EXPECT_TRUE(test::all_close(g2, got, 0, 0));
    EXPECT_TRUE(test::all_close(u2, got, 0, 0));
  }
  const float g = 1.f, u = 2.f;
  float out;
  ref::silu_mul(&g, &u, 1, &out);
  EXPECT_FLOAT_EQ(out, 2.f / (1.f + std::exp(-1.f)));
}

// log1p(exp(v)) in fp32: a few ulp; the values straddle torch's threshold 20
// and the clamp bounds.
constexpr double kSoftplusRtol = 1e-6;

TEST(DtSoftplus, CpuMatchesReference) {
  const float inf = std::numeric_limits<float>::infinity();
  struct Case {
    int64_t rows, heads, ld_raw;
    float lo, hi;
  };
  for (const Case c : {Case{1, 1, 1, 0.f, inf}, Case{1, 96, 96 * 3 + 5, 0.f, inf},
                       Case{33, 96, 200, 1e-3f, 0.1f}, Case{5, 7, 7, 0.f, 25.f}}) {
    for (DType dt : test::kAllDTypes) {
      SCOPED_TRACE(testing::Message() << dtype_name(dt) << " rows " << c.rows << " heads "
                                      << c.heads << " lo " << c.lo << " hi " << c.hi);
      const std::vector<float> raw = test::random_floats(c.rows * c.ld_raw, 1, -30.f, 30.f);
      const test::TestWeight bias = test::random_weight(dt, 1, c.heads, 2, -4.f, 4.f);
      std::vector<float> expect(c.rows * c.heads), got(c.rows * c.heads);
      ref::dt_softplus(raw.data(), c.ld_raw, c.rows, c.heads, bias.view(), c.lo, c.hi,
                       expect.data());
      cpu::dt_softplus(raw.data(), c.ld_raw, c.rows, c.heads, bias.view(), c.lo, c.hi, got.data());
      EXPECT_TRUE(test::all_close(got, expect, 1e-30, kSoftplusRtol));
    }
  }
}

// The reference at points worked by hand: softplus(0) = ln 2; above the
// threshold the value itself; far below it exp(v); clamps applied.
TEST(DtSoftplus, ReferenceHandCases) {
  const float raw[6] = {0.f, 20.5f, -30.f, 19.f, -5.f, 3.f};
  const float zero_bias[6] = {0, 0, 0, 0, 0, 0};
  float dt[6];
  const float inf = std::numeric_limits<float>::infinity();
  ref::dt_softplus(raw, 6, 1, 6, f32_view(zero_bias, 1, 6), 0.f, inf, dt);
  EXPECT_FLOAT_EQ(dt[0], std::log(2.f));
  EXPECT_EQ(dt[1], 20.5f);
  EXPECT_FLOAT_EQ(dt[2], std::exp(-30.f));
  EXPECT_FLOAT_EQ(dt[3], 19.f + std::log1p(std::exp(-19.f)));
  ref::dt_softplus(raw, 6, 1, 6, f32_view(zero_bias, 1, 6), 0.01f, 1.f, dt);
  EXPECT_EQ(dt[1], 1.f);    // clamped above
  EXPECT_EQ(dt[4], 0.01f);  // softplus(-5) = 0.0067 clamped below
  // The bias is added per head before the softplus.
  const float bias[6] = {1, 0, 0, 0, 0, -3};
  ref::dt_softplus(raw, 6, 1, 6, f32_view(bias, 1, 6), 0.f, inf, dt);
  EXPECT_FLOAT_EQ(dt[0], std::log1p(std::exp(1.f)));
  EXPECT_FLOAT_EQ(dt[5], std::log(2.f));
}

}  // namespace
}  // namespace ringscan::kernels
