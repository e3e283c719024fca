#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "activations.h"
#include "kernel_test_util.h"

namespace ringscan::kernels {
namespace {

// The references at points worked by hand.
TEST(ReluSquared, ReferenceHandCase) {
  float hand[3] = {-2.f, 0.f, 3.f};
  ref::relu_squared(hand, 3);
  EXPECT_EQ(hand[0], 0.f);
  EXPECT_EQ(hand[1], 0.f);
  EXPECT_EQ(hand[2], 9.f);
}

TEST(SiluMul, ReferenceHandCase) {
  const float g = 1.f, u = 2.f;
  float out;
  ref::silu_mul(&g, &u, 1, &out);
  EXPECT_FLOAT_EQ(out, 2.f / (1.f + std::exp(-1.f)));
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
