#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "kernel_test_util.h"
#include "rmsnorm.h"

namespace ringscan::kernels {
namespace {

// Reference in double. The fast version sums dim squares in fp32 across SIMD
// lanes (each lane about dim/16 terms, all positive): relative error at most
// ~ (dim/16 + 4) * 2^-24, halved by the square root, plus ~4 roundings of the
// products. For dim <= 3136 that is < 1e-5 relative per element.
constexpr double kRtol = 1e-5;

TEST(RmsNorm, CpuMatchesReference) {
  struct Case {
    int64_t rows, dim;
  };
  for (const Case c : {Case{1, 1}, Case{1, 3136}, Case{3, 17}, Case{64, 3136}, Case{5, 1000}}) {
    for (DType dt : test::kAllDTypes) {
      SCOPED_TRACE(testing::Message() << dtype_name(dt) << " rows " << c.rows << " dim " << c.dim);
      // Inputs of a wide range of scale (as a residual stream has).
      std::vector<float> x = test::random_floats(c.rows * c.dim, 1, -30.f, 30.f);
      const test::TestWeight w = test::random_weight(dt, 1, c.dim, 2, 0.5f, 1.5f);
      std::vector<float> expect(x.size()), got(x.size());
      ref::rmsnorm(x.data(), c.rows, c.dim, w.view(), 1e-5f, expect.data());
      cpu::rmsnorm(x.data(), c.rows, c.dim, w.view(), 1e-5f, got.data());
      EXPECT_TRUE(test::all_close(got, expect, 1e-30, kRtol));
      // In place (out aliases x) gives the same result.
      cpu::rmsnorm(x.data(), c.rows, c.dim, w.view(), 1e-5f, x.data());
      EXPECT_TRUE(test::all_close(x, got, 0, 0));
    }
  }
}

// The reference against the definition on a case worked by hand:
// x = [3, 4], mean square 12.5, eps 0 -> x / sqrt(12.5), times weight [1, 2].
TEST(RmsNorm, ReferenceHandCase) {
  const float x[2] = {3.f, 4.f}, w[2] = {1.f, 2.f};
  float out[2];
  ref::rmsnorm(x, 1, 2, f32_view(w, 1, 2), 0.f, out);
  EXPECT_FLOAT_EQ(out[0], 3.f / std::sqrt(12.5f));
  EXPECT_FLOAT_EQ(out[1], 8.f / std::sqrt(12.5f));
}

TEST(RmsNorm, CpuRejectsWrongWeightSize) {
  const std::vector<float> x(8, 1.f), w(7, 1.f);
  std::vector<float> out(8);
  EXPECT_THROW(cpu::rmsnorm(x.data(), 1, 8, f32_view(w.data(), 1, 7), 1e-5f, out.data()),
               std::invalid_argument);
}

}  // namespace
}  // namespace ringscan::kernels
