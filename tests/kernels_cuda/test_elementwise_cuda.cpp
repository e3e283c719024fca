// embedding and the element-wise activations on the GPU against the plain-loop references.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "activations.h"
#include "cuda_test_util.h"
#include "elementwise.h"
#include "embedding.h"

namespace ringscan::kernels {
namespace {

// A gather plus an exact bf16/f16 -> fp32 conversion: must be bit-identical.
TEST(EmbeddingCuda, MatchesReferenceExactly) {
  const int64_t vocab = 1000, dim = 300, n = 77;
  std::vector<int32_t> ids(n);
  for (int64_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>((i * 389 + 7) % vocab);
  ids[0] = 0;
  ids[1] = vocab - 1;
  for (DType dt : test::kAllDTypes) {
    SCOPED_TRACE(dtype_name(dt));
    const test::TestWeight table = test::random_weight(dt, vocab, dim, 11);
    std::vector<float> expect(n * dim);
    ref::embedding(table.view(), ids.data(), n, expect.data());
    test::DeviceWeight d_table(table);
    test::DeviceArray<int32_t> d_ids(ids);
    test::DeviceArray<float> d_out(n * dim);
    cuda::embedding(d_table.view(), d_ids.get(), n, d_out.get());
    EXPECT_TRUE(test::all_close(d_out.download(), expect, 0, 0));
  }
}

// max(x,0)^2 is one correctly rounded fp32 product on both sides (the
// reference's double product of two floats is exact before rounding): exact.
TEST(ReluSquaredCuda, MatchesReferenceExactly) {
  std::vector<float> x = test::random_floats(100003, 21, -3.f, 3.f);
  x[0] = 0.f;
  x[1] = -0.f;
  std::vector<float> expect = x;
  ref::relu_squared(expect.data(), static_cast<int64_t>(expect.size()));
  test::DeviceArray<float> d_x(x);
  cuda::relu_squared(d_x.get(), static_cast<int64_t>(x.size()));
  EXPECT_TRUE(test::all_close(d_x.download(), expect, 0, 0));
}

// On bf16 values: the same exact fp32 square of the bf16 input, rounded once
// to bf16 (round to nearest even, as f32_to_bf16 here): exact too.
TEST(ReluSquaredCuda, Bf16MatchesReferenceExactly) {
  std::vector<float> x = test::random_floats(100003, 22, -3.f, 3.f);
  std::vector<uint16_t> xb(x.size());
  for (size_t i = 0; i < x.size(); ++i) xb[i] = f32_to_bf16(x[i]), x[i] = bf16_to_f32(xb[i]);
  std::vector<float> expect = x;
  ref::relu_squared(expect.data(), static_cast<int64_t>(expect.size()));
  test::DeviceArray<uint16_t> d_x(xb);
  cuda::relu_squared_bf16(d_x.get(), static_cast<int64_t>(x.size()));
  const std::vector<uint16_t> got = d_x.download();
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i) bad += got[i] != f32_to_bf16(expect[i]);
  EXPECT_EQ(bad, 0);
}

// fp32 expf (<= 2 ulp), one division and one product against double: a few
// ulp, so 1e-6 relative (~8 ulp); silu's conditioning is <= 1 in exp's error.
TEST(SiluMulCuda, MatchesReference) {
  const int64_t n = 65537;
  const std::vector<float> gate = test::random_floats(n, 31, -12.f, 12.f),
                           up = test::random_floats(n, 32, -2.f, 2.f);
  std::vector<float> expect(n);
  ref::silu_mul(gate.data(), up.data(), n, expect.data());
  test::DeviceArray<float> d_gate(gate), d_up(up), d_out(n);
  cuda::silu_mul(d_gate.get(), d_up.get(), n, d_out.get());
  EXPECT_TRUE(test::all_close(d_out.download(), expect, 1e-30, 1e-6));
  // In place (out aliases gate), as the MLP calls it.
  cuda::silu_mul(d_gate.get(), d_up.get(), n, d_gate.get());
  EXPECT_TRUE(test::all_close(d_gate.download(), expect, 1e-30, 1e-6));
}

// log1pf(expf(v)) in fp32 against double: a few ulp of the result (log1p is
// well conditioned, exp's relative error passes through at most once), so
// 1e-6 relative. Inputs span the v > 20 threshold and both clamps.
TEST(DtSoftplusCuda, MatchesReference) {
  const int64_t rows = 257, heads = 96, ld_raw = 7680 + 2 * 1024 + heads;  // dt is a column slice
  const std::vector<float> raw = test::random_floats(rows * ld_raw, 41, -25.f, 25.f);
  struct Clamp { float lo, hi; };
  for (Clamp cl : {Clamp{0.f, INFINITY}, Clamp{1e-3f, 10.f}}) {
    for (DType dt : test::kAllDTypes) {
      SCOPED_TRACE(testing::Message() << dtype_name(dt) << " clamp " << cl.lo << ".." << cl.hi);
      const test::TestWeight bias = test::random_weight(dt, 1, heads, 42, -3.f, 3.f);
      std::vector<float> expect(rows * heads);
      ref::dt_softplus(raw.data() + 7, ld_raw, rows, heads, bias.view(), cl.lo, cl.hi, expect.data());
      test::DeviceWeight d_bias(bias);
      test::DeviceArray<float> d_raw(raw), d_dt(rows * heads);
      cuda::dt_softplus(d_raw.get() + 7, ld_raw, rows, heads, d_bias.view(), cl.lo, cl.hi, d_dt.get());
      EXPECT_TRUE(test::all_close(d_dt.download(), expect, 1e-30, 1e-6));
    }
  }
}

TEST(DtSoftplusCuda, RejectsBiasOfWrongLength) {
  const test::TestWeight bias = test::random_weight(DType::F32, 1, 5, 1);
  test::DeviceWeight d_bias(bias);
  EXPECT_THROW(cuda::dt_softplus(nullptr, 4, 1, 4, d_bias.view(), 0.f, INFINITY, nullptr),
               std::invalid_argument);
}

// One fp32 addition per element: exact.
TEST(AddInplaceCuda, MatchesReferenceExactly) {
  const int64_t n = 100003;
  const std::vector<float> x = test::random_floats(n, 41, -2.f, 2.f);
  std::vector<float> y = test::random_floats(n, 42, -2.f, 2.f), expect = y;
  ref::add_inplace(x.data(), n, expect.data());
  test::DeviceArray<float> d_x(x), d_y(y);
  cuda::add_inplace(d_x.get(), n, d_y.get());
  EXPECT_TRUE(test::all_close(d_y.download(), expect, 0, 0));
}

// fmaf (one rounding) against the reference's product then sum (two): at
// most 1 ulp of |y| + |D x| < 4, so 1e-6 absolute.
TEST(HeadScaleAddCuda, MatchesReference) {
  const int64_t rows = 77, heads = 12, head_dim = 64, ld_x = 1000;
  const std::vector<float> x = test::random_floats(rows * ld_x, 43, -2.f, 2.f);
  const std::vector<float> D = test::random_floats(heads, 44, -1.f, 1.f);
  std::vector<float> y = test::random_floats(rows * heads * head_dim, 45, -2.f, 2.f), expect = y;
  ref::head_scale_add(x.data(), ld_x, rows, heads, head_dim, D.data(), expect.data());
  test::DeviceArray<float> d_x(x), d_D(D), d_y(y);
  cuda::head_scale_add(d_x.get(), ld_x, rows, heads, head_dim, d_D.get(), d_y.get());
  EXPECT_TRUE(test::all_close(d_y.download(), expect, 1e-6, 0));
}

}  // namespace
}  // namespace ringscan::kernels
