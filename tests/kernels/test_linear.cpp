#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "kernel_test_util.h"
#include "linear.h"

namespace ringscan::kernels {
namespace {

// Both versions multiply the same fp32 values (bf16/f16 -> fp32 is exact); the
// reference sums in double, the fast one in fp32 in a blocked order. fp32
// rounding errors of K accumulated products are random-signed and grow like
// sqrt(K) (Higham, ch. 3): we allow 4 * sqrt(K) * 2^-24 * sum_i |x_i w_i| per
// output element (the worst case, K * 2^-24 * sum, is ~14x looser for K = 3136).
// A wrong index or panel offset is an O(|y|) error, far above this.
constexpr double kSqrtKUlps = 4.0;

struct Case {
  int64_t rows, in, out, ld_x, ld_y;
};

void check(const Case& c, DType dt) {
  SCOPED_TRACE(testing::Message() << dtype_name(dt) << " rows " << c.rows << " in " << c.in
                                  << " out " << c.out << " ld_x " << c.ld_x << " ld_y " << c.ld_y);
  const std::vector<float> x = test::random_floats(c.rows * c.ld_x, 1);
  const test::TestWeight w = test::random_weight(dt, c.out, c.in, 2);
  const float sentinel = -12345.f;
  std::vector<float> expect(c.rows * c.ld_y, sentinel), got(c.rows * c.ld_y, sentinel);
  ref::linear(x.data(), c.ld_x, c.rows, w.view(), expect.data(), c.ld_y);
  cpu::linear(x.data(), c.ld_x, c.rows, w.view(), got.data(), c.ld_y);

  // Error bound per element from sum_i |x_i w_i| = |x| |W|^T.
  std::vector<float> ax(x.size()), aw(w.values.size());
  for (size_t i = 0; i < x.size(); ++i) ax[i] = std::fabs(x[i]);
  for (size_t i = 0; i < aw.size(); ++i) aw[i] = std::fabs(w.values[i]);
  std::vector<float> tol(c.rows * c.ld_y);
  ref::linear(ax.data(), c.ld_x, c.rows, f32_view(aw.data(), c.out, c.in), tol.data(), c.ld_y);
  const double eps = std::numeric_limits<float>::epsilon() / 2;  // 2^-24
  for (float& t : tol)
    t = static_cast<float>(kSqrtKUlps * std::sqrt(double(c.in)) * eps * t + 1e-30);

  EXPECT_TRUE(test::all_within(got.data(), c.ld_y, expect.data(), c.ld_y, tol.data(), c.ld_y,
                               c.rows, c.out));
  EXPECT_TRUE(test::padding_untouched(got.data(), c.ld_y, c.rows, c.out, sentinel));
}

// Shapes cover the decode path (few rows), the panel path with several panels
// and a ragged last panel (out not a multiple of the panel height), odd sizes,
// and strided x / y.
TEST(Linear, CpuMatchesReference) {
  const Case cases[] = {
      {1, 1, 1, 1, 1},
      {1, 64, 33, 64, 33},
      {2, 300, 1000, 301, 1003},
      {4, 300, 1000, 300, 1000},
      {5, 300, 1000, 300, 1000},
      {37, 300, 1000, 310, 1000},
      {17, 4097, 100, 4097, 101},
      {64, 129, 257, 200, 300},
      {3, 3136, 517, 3136 * 2, 517},
  };
  for (const Case& c : cases)
    for (DType dt : test::kAllDTypes) check(c, dt);
}

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
