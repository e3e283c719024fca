#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "gated_rmsnorm.h"
#include "kernel_test_util.h"

namespace ringscan::kernels {
namespace {

// Reference in double. The fast version: silu in fp32 (a few ulp), then the
// same fp32 sum of squares as rmsnorm over group_size terms (< 1e-5 relative
// for groups up to a few thousand channels), then ~3 roundings.
constexpr double kRtol = 1e-5;

TEST(GatedRmsNorm, CpuMatchesReference) {
  struct Case {
    int64_t rows, dim, group, ld_z;
  };
  for (const Case c : {Case{1, 8, 8, 8}, Case{1, 7680, 960, 7680 * 2 + 256}, Case{3, 30, 10, 33},
                       Case{40, 640, 80, 700}, Case{7, 12, 1, 12}}) {
    for (DType dt : test::kAllDTypes) {
      SCOPED_TRACE(testing::Message() << dtype_name(dt) << " rows " << c.rows << " dim " << c.dim
                                      << " group " << c.group << " ld_z " << c.ld_z);
      std::vector<float> y = test::random_floats(c.rows * c.dim, 1, -4.f, 4.f);
      // z is a column slice of a wider matrix (Mamba's in_proj output).
      const std::vector<float> z = test::random_floats(c.rows * c.ld_z, 2, -6.f, 6.f);
      const test::TestWeight w = test::random_weight(dt, 1, c.dim, 3, 0.5f, 1.5f);
      std::vector<float> expect(y.size()), got(y.size());
      ref::gated_rmsnorm(y.data(), z.data(), c.ld_z, c.rows, c.dim, c.group, w.view(), 1e-5f,
                         expect.data());
      cpu::gated_rmsnorm(y.data(), z.data(), c.ld_z, c.rows, c.dim, c.group, w.view(), 1e-5f,
                         got.data());
      EXPECT_TRUE(test::all_close(got, expect, 1e-30, kRtol));
      cpu::gated_rmsnorm(y.data(), z.data(), c.ld_z, c.rows, c.dim, c.group, w.view(), 1e-5f,
                         y.data());  // out aliases y
      EXPECT_TRUE(test::all_close(y, got, 0, 0));
    }
  }
}

// Groups are normalised independently: scaling one group's y leaves the
// other group's output unchanged and its own unchanged too (scale invariance).
TEST(GatedRmsNorm, ReferenceGroupsAreIndependent) {
  const int64_t dim = 8, group = 4;
  std::vector<float> y = test::random_floats(dim, 4), z = test::random_floats(dim, 5);
  const std::vector<float> w(dim, 1.f);
  std::vector<float> a(dim), b(dim);
  ref::gated_rmsnorm(y.data(), z.data(), dim, 1, dim, group, f32_view(w.data(), 1, dim), 0.f,
                     a.data());
  for (int64_t c = 0; c < group; ++c) y[c] *= 8.f;
  ref::gated_rmsnorm(y.data(), z.data(), dim, 1, dim, group, f32_view(w.data(), 1, dim), 0.f,
                     b.data());
  EXPECT_TRUE(test::all_close(b, a, 1e-6, 1e-6));
  // And each group has mean square 1 (weight 1, eps 0).
  for (int64_t g0 = 0; g0 < dim; g0 += group) {
    double ms = 0;
    for (int64_t c = g0; c < g0 + group; ++c) ms += double(a[c]) * a[c];
    EXPECT_NEAR(ms / group, 1.0, 1e-6);
  }
}

TEST(GatedRmsNorm, CpuRejectsBadGroups) {
  const std::vector<float> y(12, 1.f), z(12, 1.f), w(12, 1.f);
  std::vector<float> out(12);
  EXPECT_THROW(cpu::gated_rmsnorm(y.data(), z.data(), 12, 1, 12, 5, f32_view(w.data(), 1, 12),
                                  1e-5f, out.data()),
               std::invalid_argument);
}

}  // namespace
}  // namespace ringscan::kernels
