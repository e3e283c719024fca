#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "gated_rmsnorm.h"
#include "kernel_test_util.h"

namespace ringscan::kernels {
namespace {

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
