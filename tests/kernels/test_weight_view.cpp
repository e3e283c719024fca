// Half-precision conversions against bit patterns derived by hand from the
// IEEE 754 binary16 layout (1 sign, 5 exponent bits with bias 15, 10 mantissa
// bits) and bfloat16 (the top 16 bits of a binary32).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernel_test_util.h"
#include "weight_view.h"

namespace ringscan {
namespace {

TEST(WeightView, F16ToF32KnownPatterns) {
  EXPECT_EQ(f16_to_f32(0x3C00), 1.0f);                      // exp 15, mantissa 0
  EXPECT_EQ(f16_to_f32(0xC000), -2.0f);                     // sign, exp 16
  EXPECT_EQ(f16_to_f32(0x7BFF), 65504.0f);                  // largest finite: (2 - 2^-10) * 2^15
  EXPECT_EQ(f16_to_f32(0x0400), std::ldexp(1.0f, -14));     // smallest normal
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));     // smallest subnormal
  EXPECT_EQ(f16_to_f32(0x03FF), std::ldexp(1023.0f, -24));  // largest subnormal
  EXPECT_EQ(f16_to_f32(0x8001), -std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x3555), std::ldexp(1365.0f, -12));  // 0.333251953125
  EXPECT_EQ(f16_to_f32(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(f16_to_f32(0xFC00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7E00)));
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7C01)));  // signalling-NaN pattern stays NaN
  const float neg_zero = f16_to_f32(0x8000);
  EXPECT_EQ(neg_zero, 0.0f);
  EXPECT_TRUE(std::signbit(neg_zero));
}

TEST(WeightView, F32ToF16KnownPatterns) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3C00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xC000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7BFF);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -14)), 0x0400);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(1023.0f, -24)), 0x03FF);
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_EQ(f32_to_f16(-std::numeric_limits<float>::infinity()), 0xFC00);
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  const uint16_t nan = f32_to_f16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7C00, 0x7C00);  // all-ones exponent ...
  EXPECT_NE(nan & 0x03FF, 0);       // ... and a non-zero mantissa
}

// Round to nearest, ties to even, at every boundary the format has.
TEST(WeightView, F32ToF16Rounding) {
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);      // tie -> even (down)
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);  // tie -> even (up)
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3C01);  // above tie
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7BFF);  // below the halfway point to 2^16
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7C00);  // halfway, 65504's mantissa is odd -> inf
  EXPECT_EQ(f32_to_f16(1e10f), 0x7C00);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // half the smallest subnormal: tie -> 0
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 subnormal ulps: tie -> 2
  EXPECT_EQ(f32_to_f16(std::ldexp(1.5f, -26)), 0x0000);  // below half an ulp
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25) * 1.001f), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(2047.0f, -25)),
            0x0400);  // largest subnormal + half ulp -> normal
  EXPECT_EQ(f32_to_f16(1e-30f), 0x0000);
  EXPECT_EQ(f32_to_f16(-1e-30f), 0x8000);
}

// Every non-NaN half value converts to fp32 and back to itself.
TEST(WeightView, F16RoundTripsEveryPattern) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_EQ(h & 0x7C00, 0x7C00u) << h;
      continue;
    }
    ASSERT_EQ(f32_to_f16(f), h) << "pattern 0x" << std::hex << h;
  }
}

TEST(WeightView, Bf16KnownPatterns) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(f32_to_bf16(-2.0f), 0xC000);
  EXPECT_EQ(bf16_to_f32(0x3F80), 1.0f);
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);      // tie -> even (down)
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3F82);  // tie -> even (up)
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::infinity()), 0x7F80);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
}

TEST(WeightView, ToF32AndAtAgreeForEveryDType) {
  for (DType dt : test::kAllDTypes) {
    const test::TestWeight w = test::random_weight(dt, 3, 7, 11);
    const WeightView v = w.view();
    std::vector<float> out(21);
    v.to_f32(0, 21, out.data());
    for (int i = 0; i < 21; ++i) {
      EXPECT_EQ(out[i], w.values[i]) << dtype_name(dt);
      EXPECT_EQ(v.at(i), w.values[i]) << dtype_name(dt);
    }
    const WeightView row2 = v.row_slice(2, 1);
    EXPECT_EQ(row2.rows, 1);
    EXPECT_EQ(row2.at(3), w.values[2 * 7 + 3]) << dtype_name(dt);
  }
}

}  // namespace
}  // namespace ringscan
