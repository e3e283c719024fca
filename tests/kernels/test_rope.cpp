#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernel_test_util.h"
#include "rope.h"

namespace ringscan::kernels {
namespace {

// Both versions take angles in double; the fast one rounds cos/sin to fp32
// (0.5 ulp each) and rotates in fp32 (2 products + 1 sum): error <= ~3 ulp of
// |x1| + |x2| <= 2, i.e. < 1e-6 absolute for inputs in [-1, 1].
constexpr double kAtol = 1e-6;

struct Case {
  int64_t rows, heads, head_dim, rotary_dim, ld_x, pos0;
  float theta;
};

TEST(Rope, CpuMatchesReference) {
  const Case cases[] = {
      {1, 1, 2, 2, 2, 0, 10000.f},
      {1, 40, 128, 128, 40 * 128, 123456, 10000.f},
      {7, 3, 64, 32, 3 * 64 + 10, 5, 500000.f},  // partial rotary, strided rows
      {50, 8, 128, 64, 8 * 128, 1 << 20, 10000.f},
      {3, 2, 10, 6, 21, 17, 10.f},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message()
                 << "rows " << c.rows << " heads " << c.heads << " head_dim " << c.head_dim
                 << " rotary " << c.rotary_dim << " pos0 " << c.pos0);
    const std::vector<float> x = test::random_floats(c.rows * c.ld_x, 1);
    std::vector<float> expect = x, got = x;
    ref::rope(expect.data(), c.ld_x, c.rows, c.heads, c.head_dim, c.rotary_dim, c.pos0, c.theta);
    cpu::rope(got.data(), c.ld_x, c.rows, c.heads, c.head_dim, c.rotary_dim, c.pos0, c.theta);
    EXPECT_TRUE(test::all_close(got.data(), c.ld_x, expect.data(), c.ld_x, c.rows,
                                c.heads * c.head_dim, kAtol, 0));
    // Channels past rotary_dim in each head, and the row padding, are untouched.
    for (int64_t r = 0; r < c.rows; ++r) {
      for (int64_t h = 0; h < c.heads; ++h)
        for (int64_t d = c.rotary_dim; d < c.head_dim; ++d) {
          const int64_t i = r * c.ld_x + h * c.head_dim + d;
          ASSERT_EQ(got[i], x[i]);
        }
      for (int64_t i = r * c.ld_x + c.heads * c.head_dim; i < (r + 1) * c.ld_x; ++i)
        ASSERT_EQ(got[i], x[i]);
    }
  }
}

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
