#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernel_test_util.h"
#include "rope.h"

namespace ringscan::kernels {
namespace {

// The reference on a case worked by hand: theta 10000, rotary_dim 4 ->
// inv_freq = [1, 10000^-0.5 = 0.01]. At position 1 the pair (x0, x2) turns by
// 1 rad and (x1, x3) by 0.01 rad; at position 0 nothing moves.
TEST(Rope, ReferenceHandCase) {
  float x[2][4] = {{1, 0, 0, 0}, {1, 2, 3, 4}};  // rows: positions 0 and 1
  ref::rope(&x[0][0], 4, 2, 1, 4, 4, 0, 10000.f);
  EXPECT_EQ(x[0][0], 1.f);
  EXPECT_EQ(x[0][2], 0.f);
  EXPECT_FLOAT_EQ(x[1][0], std::cos(1.f) * 1 - std::sin(1.f) * 3);
  EXPECT_FLOAT_EQ(x[1][2], 3 * std::cos(1.f) + 1 * std::sin(1.f));
  EXPECT_FLOAT_EQ(x[1][1], 2 * std::cos(0.01f) - 4 * std::sin(0.01f));
  EXPECT_FLOAT_EQ(x[1][3], 4 * std::cos(0.01f) + 2 * std::sin(0.01f));
}

// Rotary makes q.k depend only on the distance between positions: rotating a
// pair at (p, p + 7) and at (p + 1000, p + 1007) gives the same dot product.
TEST(Rope, CpuDotDependsOnlyOnDistance) {
  const int64_t D = 64;
  const std::vector<float> q = test::random_floats(D, 3), k = test::random_floats(D, 4);
  auto dot_at = [&](int64_t pq, int64_t pk) {
    std::vector<float> a = q, b = k;
    cpu::rope(a.data(), D, 1, 1, D, D, pq, 10000.f);
    cpu::rope(b.data(), D, 1, 1, D, D, pk, 10000.f);
    double s = 0;
    for (int64_t d = 0; d < D; ++d) s += double(a[d]) * b[d];
    return s;
  };
  EXPECT_NEAR(dot_at(3, 10), dot_at(1003, 1010), 1e-5);
}

}  // namespace
}  // namespace ringscan::kernels
