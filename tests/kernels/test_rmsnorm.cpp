#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "kernel_test_util.h"
#include "rmsnorm.h"

namespace ringscan::kernels {
namespace {

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
