// cuBLAS-backed linear on the GPU against the plain-loop reference.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "cuda_test_util.h"
#include "linear.h"

namespace ringscan::kernels {
namespace {

// The same fp32 values of x and W (bf16/f16 -> fp32 is exact, and the GEMM is
// true fp32: CUBLAS_COMPUTE_32F, no TF32) summed in fp32 in cuBLAS's order
// against double in the reference. As in tests/kernels/test_linear.cpp we
// allow 4 * sqrt(K) * 2^-24 * sum_i |x_i w_i| per element (random-signed
// rounding errors grow like sqrt(K)). TF32 inputs (10-bit mantissa) would be
// ~2^-11 relative per product, hundreds of times over this bound: the test
// catches an accidental TF32 path as well as wrong strides or panel offsets.
constexpr double kSqrtKUlps = 4.0;

struct Case {
  int64_t rows, in, out, ld_x, ld_y;
};

// got == expect within ulps * sqrt(K) * 2^-24 * sum_i |x_i w_i| per element
// (the bound above, its factor given), and y's padding kept its sentinel.
void expect_within_sum_bound(const std::vector<float>& got, const std::vector<float>& expect,
                             const std::vector<float>& x, const test::TestWeight& w, const Case& c, double ulps,
                             float sentinel) {
  std::vector<float> ax(x.size()), aw(w.values.size());
  for (size_t i = 0; i < x.size(); ++i) ax[i] = std::fabs(x[i]);
  for (size_t i = 0; i < aw.size(); ++i) aw[i] = std::fabs(w.values[i]);
  std::vector<float> tol(c.rows * c.ld_y);
  ref::linear(ax.data(), c.ld_x, c.rows, f32_view(aw.data(), c.out, c.in), tol.data(), c.ld_y);
  const double eps = std::numeric_limits<float>::epsilon() / 2;
  for (float& t : tol) t = static_cast<float>(ulps * std::sqrt(double(c.in)) * eps * t + 1e-30);
  EXPECT_TRUE(test::all_within(got.data(), c.ld_y, expect.data(), c.ld_y, tol.data(), c.ld_y, c.rows, c.out));
  EXPECT_TRUE(test::padding_untouched(got.data(), c.ld_y, c.rows, c.out, sentinel));
}

void check(const Case& c, DType dt) {
  SCOPED_TRACE(testing::Message() << dtype_name(dt) << " rows " << c.rows << " in " << c.in
                                  << " out " << c.out << " ld_x " << c.ld_x << " ld_y " << c.ld_y);
  const std::vector<float> x = test::random_floats(c.rows * c.ld_x, 1);
  const test::TestWeight w = test::random_weight(dt, c.out, c.in, 2);
  const float sentinel = -12345.f;
  std::vector<float> expect(c.rows * c.ld_y, sentinel);
  ref::linear(x.data(), c.ld_x, c.rows, w.view(), expect.data(), c.ld_y);

  test::DeviceWeight d_w(w);
  test::DeviceArray<float> d_x(x), d_y(std::vector<float>(c.rows * c.ld_y, sentinel));
  cuda::linear(d_x.get(), c.ld_x, c.rows, d_w.view(), d_y.get(), c.ld_y);
  const std::vector<float> got = d_y.download();

  expect_within_sum_bound(got, expect, x, w, c, kSqrtKUlps, sentinel);
}

// Decode (one row), odd sizes, strided x / y, and for bf16/f16 a weight larger
// than one conversion panel (16 Mi elements: 6000 x 3136 is two panels, the
// last ragged).
TEST(LinearCuda, MatchesReference) {
  const Case cases[] = {
      {1, 1, 1, 1, 1},
      {1, 64, 33, 64, 33},
      {2, 300, 1000, 301, 1003},
      {37, 300, 1000, 310, 1000},
      {17, 4097, 100, 4097, 101},
      {64, 129, 257, 200, 300},
      {3, 3136, 6000, 3136 * 2, 6001},
  };
  for (const Case& c : cases)
    for (DType dt : test::kAllDTypes) check(c, dt);
}

// linear_bf16 rounds x to bf16 and multiplies on the tensor cores. Its
// reference is ref::linear of the *rounded* x (rounded here on the host with
// the same round-to-nearest-even) and the bf16 weight: the products of two
// bf16 values are exact in fp32, so what remains is fp32 accumulation in
// cuBLAS's order. The tensor cores' fp32 accumulation may truncate rather than
// round inside a k-block, hence 4x the sqrt(K) bound of the exact path.
// Rounding x is checked too: against the unrounded x the difference is ~2^-9
// relative, far above this tolerance.
TEST(LinearBf16Cuda, MatchesReferenceOfRoundedInputs) {
  const Case cases[] = {{1, 64, 33, 64, 33}, {37, 300, 1000, 310, 1000}, {64, 3136, 1024, 3136, 1030}};
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << "rows " << c.rows << " in " << c.in << " out " << c.out);
    std::vector<float> x = test::random_floats(c.rows * c.ld_x, 3);
    const test::TestWeight w = test::random_weight(DType::BF16, c.out, c.in, 4);
    std::vector<float> xr = x;
    for (float& v : xr) v = bf16_to_f32(f32_to_bf16(v));
    const float sentinel = -12345.f;
    std::vector<float> expect(c.rows * c.ld_y, sentinel);
    ref::linear(xr.data(), c.ld_x, c.rows, w.view(), expect.data(), c.ld_y);

    test::DeviceWeight d_w(w);
    test::DeviceArray<float> d_x(x), d_y(std::vector<float>(c.rows * c.ld_y, sentinel));
    cuda::linear_bf16(d_x.get(), c.ld_x, c.rows, d_w.view(), d_y.get(), c.ld_y);
    const std::vector<float> got = d_y.download();

    expect_within_sum_bound(got, expect, xr, w, c, 4 * kSqrtKUlps, sentinel);
  }
  // A weight that is not bf16 is refused, not silently widened.
  const test::TestWeight f32 = test::random_weight(DType::F32, 4, 4, 5);
  test::DeviceWeight d_f32(f32);
  test::DeviceArray<float> d_x(16), d_y(16);
  EXPECT_THROW(cuda::linear_bf16(d_x.get(), 4, 4, d_f32.view(), d_y.get(), 4), std::invalid_argument);
}

}  // namespace
}  // namespace ringscan::kernels
