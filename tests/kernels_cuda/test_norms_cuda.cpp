// rmsnorm and Mamba's gated RMSNorm on the GPU against the plain-loop references.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "cuda_test_util.h"
#include "gated_rmsnorm.h"
#include "rmsnorm.h"

namespace ringscan::kernels {
namespace {

// The GPU sums squares in fp32 (relative error <= ~(dim/256 + 8) * 2^-24, see
// rmsnorm.cu; 1e-6 at dim 3136), the reference in double; the output is a
// product, so its relative error is about that plus a few ulp: 1e-5 relative.
// A wrong row, group or weight index is an O(1) relative error.
constexpr double kRtol = 1e-5, kAtol = 1e-7;

TEST(RmsnormCuda, MatchesReference) {
  struct Case { int64_t rows, dim; };
  for (Case c : {Case{1, 1}, Case{3, 7}, Case{17, 3136}, Case{5, 12544}}) {
    for (DType dt : test::kAllDTypes) {
      SCOPED_TRACE(testing::Message() << dtype_name(dt) << " rows " << c.rows << " dim " << c.dim);
      const std::vector<float> x = test::random_floats(c.rows * c.dim, 51, -4.f, 4.f);
      const test::TestWeight w = test::random_weight(dt, 1, c.dim, 52, 0.5f, 1.5f);
      std::vector<float> expect(x.size());
      ref::rmsnorm(x.data(), c.rows, c.dim, w.view(), 1e-5f, expect.data());
      test::DeviceWeight d_w(w);
      test::DeviceArray<float> d_x(x), d_out(x.size());
      cuda::rmsnorm(d_x.get(), c.rows, c.dim, d_w.view(), 1e-5f, d_out.get());
      EXPECT_TRUE(test::all_close(d_out.download(), expect, kAtol, kRtol));
      // bf16 out (what feeds the engine's GEMMs): the fp32 result rounded
      // once (relative error <= 2^-8: bf16 has 8 significant bits), plus the fp32 bound.
      test::DeviceArray<uint16_t> d_b(x.size());
      cuda::rmsnorm_to(d_x.get(), c.rows, c.dim, d_w.view(), 1e-5f, d_b.get(), DType::BF16);
      EXPECT_TRUE(test::all_close(test::from_bf16(d_b.download()), expect, kAtol, kRtol + std::ldexp(1.0, -8)));
      cuda::rmsnorm(d_x.get(), c.rows, c.dim, d_w.view(), 1e-5f, d_x.get());  // in place
      EXPECT_TRUE(test::all_close(d_x.download(), expect, kAtol, kRtol));
    }
  }
}

// Same reasoning as rmsnorm, plus silu(z) in fp32 (a few ulp).
TEST(GatedRmsnormCuda, MatchesReference) {
  struct Case { int64_t rows, dim, group, ld_z; };
  for (Case c : {Case{1, 8, 8, 8}, Case{9, 640, 80, 1000}, Case{4, 7680, 960, 7680 * 2 + 2048 + 96},
                 Case{3, 7680, 7680, 7680}}) {
    for (DType dt : test::kAllDTypes) {
      SCOPED_TRACE(testing::Message() << dtype_name(dt) << " rows " << c.rows << " dim " << c.dim
                                      << " group " << c.group << " ld_z " << c.ld_z);
      const std::vector<float> y = test::random_floats(c.rows * c.dim, 61, -3.f, 3.f),
                               z = test::random_floats(c.rows * c.ld_z, 62, -6.f, 6.f);
      const test::TestWeight w = test::random_weight(dt, 1, c.dim, 63, 0.5f, 1.5f);
      std::vector<float> expect(y.size());
      ref::gated_rmsnorm(y.data(), z.data(), c.ld_z, c.rows, c.dim, c.group, w.view(), 1e-5f,
                         expect.data());
      test::DeviceWeight d_w(w);
      test::DeviceArray<float> d_y(y), d_z(z), d_out(y.size());
      cuda::gated_rmsnorm(d_y.get(), d_z.get(), c.ld_z, c.rows, c.dim, c.group, d_w.view(), 1e-5f,
                          d_out.get());
      EXPECT_TRUE(test::all_close(d_out.download(), expect, kAtol, kRtol));
      // bf16 out (out_proj's input in the GPU engine): rounded once, <= 2^-8 relative more.
      test::DeviceArray<uint16_t> d_b(y.size());
      cuda::gated_rmsnorm_to(d_y.get(), d_z.get(), c.ld_z, c.rows, c.dim, c.group, d_w.view(), 1e-5f, d_b.get(),
                             DType::BF16);
      EXPECT_TRUE(test::all_close(test::from_bf16(d_b.download()), expect, kAtol, kRtol + std::ldexp(1.0, -8)));
      cuda::gated_rmsnorm(d_y.get(), d_z.get(), c.ld_z, c.rows, c.dim, c.group, d_w.view(), 1e-5f,
                          d_y.get());  // in place
      EXPECT_TRUE(test::all_close(d_y.download(), expect, kAtol, kRtol));
    }
  }
}

TEST(GatedRmsnormCuda, RejectsDimNotMultipleOfGroup) {
  const test::TestWeight w = test::random_weight(DType::F32, 1, 10, 1);
  test::DeviceWeight d_w(w);
  EXPECT_THROW(cuda::gated_rmsnorm(nullptr, nullptr, 10, 1, 10, 3, d_w.view(), 1e-5f, nullptr),
               std::invalid_argument);
}

}  // namespace
}  // namespace ringscan::kernels
