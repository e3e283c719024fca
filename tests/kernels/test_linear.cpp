#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "kernel_test_util.h"
#include "linear.h"

namespace ringscan::kernels {
namespace {

// The reference against a product worked by hand: x = [1, 2, 3], W = [[1, 0, -1],
// [0.5, 0.5, 0.5]] -> y = [1 - 3, 0.5 + 1 + 1.5] = [-2, 3].
TEST(Linear, ReferenceHandCase) {
  const float x[3] = {1, 2, 3}, w[6] = {1, 0, -1, 0.5f, 0.5f, 0.5f};
  float y[2];
  ref::linear(x, 3, 1, f32_view(w, 2, 3), y, 2);
  EXPECT_EQ(y[0], -2.f);
  EXPECT_EQ(y[1], 3.f);
}

}  // namespace
}  // namespace ringscan::kernels
