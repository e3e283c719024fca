#include <gtest/gtest.h>

#include <vector>

#include "elementwise.h"
#include "kernel_test_util.h"

namespace ringscan::kernels {
namespace {

// One fp32 addition per element on both sides: exact.
TEST(AddInplace, CpuMatchesReferenceExactly) {
  for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{100003}}) {
    const std::vector<float> x = test::random_floats(n, 3, -2.f, 2.f);
    std::vector<float> expect = test::random_floats(n, 4, -2.f, 2.f), got = expect;
    ref::add_inplace(x.data(), n, expect.data());
    cpu::add_inplace(x.data(), n, got.data());
    EXPECT_TRUE(test::all_close(got, expect, 0, 0));
  }
}

// y + D*x: the compiler may fuse the multiply-add (one rounding instead of
// two), so up to 1 ulp of |y| + |D x| (values here are below 4): 1e-6 absolute.
TEST(HeadScaleAdd, CpuMatchesReference) {
  struct Case { int64_t rows, heads, head_dim, ld_x; };
  for (Case c : {Case{1, 1, 1, 1}, Case{5, 3, 4, 12}, Case{33, 8, 64, 600}, Case{200, 24, 64, 2000}}) {
    SCOPED_TRACE(testing::Message() << c.rows << "x" << c.heads << "x" << c.head_dim << " ld " << c.ld_x);
    const std::vector<float> x = test::random_floats(c.rows * c.ld_x, 5, -2.f, 2.f);
    const std::vector<float> D = test::random_floats(c.heads, 6, -1.f, 1.f);
    std::vector<float> expect = test::random_floats(c.rows * c.heads * c.head_dim, 7, -2.f, 2.f), got = expect;
    ref::head_scale_add(x.data(), c.ld_x, c.rows, c.heads, c.head_dim, D.data(), expect.data());
    cpu::head_scale_add(x.data(), c.ld_x, c.rows, c.heads, c.head_dim, D.data(), got.data());
    EXPECT_TRUE(test::all_close(got, expect, 1e-6, 0));
  }
}

}  // namespace
}  // namespace ringscan::kernels
