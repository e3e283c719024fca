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

// gemm_bf16 multiplies bf16 x and W on the tensor cores. Its reference is
// ref::linear of the *rounded* x (rounded here on the host with the same
// round-to-nearest-even) and the bf16 weight: the products of two bf16 values
// are exact in fp32, so what remains is fp32 accumulation in cuBLAS's order.
// The tensor cores' fp32 accumulation may truncate rather than round inside a
// k-block, hence 4x the sqrt(K) bound of the exact path. Rounding x is checked
// too: against the unrounded x the difference is up to 2^-8 relative, far above
// this tolerance. Each case runs with x given as fp32 (rounded into the
// workspace: whole, and 7 rows per pass) and as bf16, with y fp32, y += (the
// epilogue's residual add, on a y holding 0.5) and y bf16 (rounded once:
// one more rounding, <= 2^-8 relative to |y|).
TEST(GemmBf16Cuda, MatchesReferenceOfRoundedInputs) {
  const Case cases[] = {{1, 64, 33, 64, 33}, {37, 300, 1000, 310, 1000}, {64, 3136, 1024, 3136, 1030}};
  for (const Case& c : cases) {
    std::vector<float> x = test::random_floats(c.rows * c.ld_x, 3);
    const test::TestWeight w = test::random_weight(DType::BF16, c.out, c.in, 4);
    std::vector<float> xr = x;
    std::vector<uint16_t> xb(x.size());
    for (size_t i = 0; i < x.size(); ++i) xb[i] = f32_to_bf16(x[i]), xr[i] = bf16_to_f32(xb[i]);
    const float sentinel = -12345.f;
    std::vector<float> expect(c.rows * c.ld_y, sentinel);
    ref::linear(xr.data(), c.ld_x, c.rows, w.view(), expect.data(), c.ld_y);
    test::DeviceWeight d_w(w);
    test::DeviceArray<float> d_x(x);
    test::DeviceArray<uint16_t> d_xb(xb);
    const size_t full_ws = cuda::gemm_bf16_workspace(DType::F32, c.rows, c.in);
    EXPECT_EQ(cuda::gemm_bf16_workspace(DType::BF16, c.rows, c.in), 0u);
    test::DeviceArray<uint16_t> ws(full_ws / 2);
    for (const int mode : {0, 1, 2}) {  // x fp32 + whole workspace, x fp32 + 7-row workspace, x bf16
      SCOPED_TRACE(testing::Message() << "rows " << c.rows << " in " << c.in << " out " << c.out << " mode " << mode);
      const Workspace wsp{ws.get(), mode == 1 ? size_t(7) * c.in * 2 : full_ws};
      const void* xin = mode == 2 ? static_cast<const void*>(d_xb.get()) : d_x.get();
      const DType xt = mode == 2 ? DType::BF16 : DType::F32;
      test::DeviceArray<float> d_y(std::vector<float>(c.rows * c.ld_y, sentinel));
      cuda::gemm_bf16(xin, xt, c.ld_x, c.rows, d_w.view(), d_y.get(), DType::F32, c.ld_y, false, wsp, nullptr);
      expect_within_sum_bound(d_y.download(), expect, xr, w, c, 4 * kSqrtKUlps, sentinel);

      // y += x W^T onto 0.5 (padding keeps its sentinel).
      std::vector<float> y0(c.rows * c.ld_y, sentinel), expect_acc = expect;
      for (int64_t r = 0; r < c.rows; ++r)
        for (int64_t o = 0; o < c.out; ++o) y0[r * c.ld_y + o] = 0.5f, expect_acc[r * c.ld_y + o] += 0.5f;
      test::DeviceArray<float> d_acc(y0);
      cuda::gemm_bf16(xin, xt, c.ld_x, c.rows, d_w.view(), d_acc.get(), DType::F32, c.ld_y, true, wsp, nullptr);
      expect_within_sum_bound(d_acc.download(), expect_acc, xr, w, c, 4 * kSqrtKUlps + 1, sentinel);

      // bf16 y: the fp32 result rounded once.
      test::DeviceArray<uint16_t> d_yb(std::vector<uint16_t>(c.rows * c.ld_y, 0x7fc1));
      cuda::gemm_bf16(xin, xt, c.ld_x, c.rows, d_w.view(), d_yb.get(), DType::BF16, c.ld_y, false, wsp, nullptr);
      const std::vector<uint16_t> yb = d_yb.download();
      int bad = 0;
      for (int64_t r = 0; r < c.rows; ++r)
        for (int64_t o = 0; o < c.ld_y; ++o) {
          const size_t i = r * c.ld_y + o;
          if (o >= c.out) {
            bad += yb[i] != 0x7fc1;  // padding untouched
            continue;
          }
          const double e = expect[i], g = bf16_to_f32(yb[i]);
          bad += !(std::fabs(g - e) <= std::ldexp(std::fabs(e), -8) + 1e-3);
        }
      EXPECT_EQ(bad, 0);
    }
  }
  // A weight that is not bf16 is refused, not silently widened; so is an fp32
  // x without workspace, and accumulating into a bf16 y.
  const test::TestWeight f32 = test::random_weight(DType::F32, 4, 4, 5);
  const test::TestWeight b16 = test::random_weight(DType::BF16, 4, 4, 5);
  test::DeviceWeight d_f32(f32), d_b16(b16);
  test::DeviceArray<float> d_x(16), d_y(16);
  test::DeviceArray<uint16_t> ws(16);
  const Workspace wsp{ws.get(), 32};
  EXPECT_THROW(cuda::gemm_bf16(d_x.get(), DType::F32, 4, 4, d_f32.view(), d_y.get(), DType::F32, 4, false, wsp, nullptr),
               std::invalid_argument);
  EXPECT_THROW(cuda::gemm_bf16(d_x.get(), DType::F32, 4, 4, d_b16.view(), d_y.get(), DType::F32, 4, false, {}, nullptr),
               std::invalid_argument);
  EXPECT_THROW(cuda::gemm_bf16(d_x.get(), DType::BF16, 4, 4, d_b16.view(), d_y.get(), DType::BF16, 4, true, wsp, nullptr),
               std::invalid_argument);
}

// linear_accumulate: y += x W^T on the exact path, within the same bound.
TEST(LinearCuda, AccumulateAddsToY) {
  const Case c{37, 300, 1000, 310, 1000};
  const std::vector<float> x = test::random_floats(c.rows * c.ld_x, 6);
  const test::TestWeight w = test::random_weight(DType::BF16, c.out, c.in, 7);
  const float sentinel = -12345.f;
  std::vector<float> expect(c.rows * c.ld_y, sentinel);
  ref::linear(x.data(), c.ld_x, c.rows, w.view(), expect.data(), c.ld_y);
  std::vector<float> y0(expect.size(), sentinel);
  for (int64_t r = 0; r < c.rows; ++r)
    for (int64_t o = 0; o < c.out; ++o) y0[r * c.ld_y + o] = -2.f, expect[r * c.ld_y + o] -= 2.f;
  test::DeviceWeight d_w(w);
  test::DeviceArray<float> d_x(x), d_y(y0);
  cuda::linear_accumulate(d_x.get(), c.ld_x, c.rows, d_w.view(), d_y.get(), c.ld_y);
  expect_within_sum_bound(d_y.download(), expect, x, w, c, kSqrtKUlps + 1, sentinel);
}

}  // namespace
}  // namespace ringscan::kernels
