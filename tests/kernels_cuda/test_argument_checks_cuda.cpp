// The argument checks of the CUDA element-wise ops, norms and GEMMs (their
// results against the references are the op cases of tests/backend_ops, run
// on every backend).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>

#include "cuda_test_util.h"
#include "activations.h"
#include "gated_rmsnorm.h"
#include "linear.h"

namespace ringscan::kernels {
namespace {

// A weight that is not bf16 is refused, not silently widened; so is an fp32
// x without workspace, and accumulating into a bf16 y.
TEST(GemmBf16Cuda, RejectsWrongDtypesAndMissingWorkspace) {
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
  // An fp32 x needs no workspace of its own once it is bf16.
  EXPECT_EQ(cuda::gemm_bf16_workspace(DType::BF16, 64, 3136), 0u);
}

TEST(GatedRmsnormCuda, RejectsDimNotMultipleOfGroup) {
  const test::TestWeight w = test::random_weight(DType::F32, 1, 10, 1);
  test::DeviceWeight d_w(w);
  EXPECT_THROW(cuda::gated_rmsnorm(nullptr, nullptr, 10, 1, 10, 3, d_w.view(), 1e-5f, nullptr),
               std::invalid_argument);
}

TEST(DtSoftplusCuda, RejectsBiasOfWrongLength) {
  const test::TestWeight bias = test::random_weight(DType::F32, 1, 5, 1);
  test::DeviceWeight d_bias(bias);
  EXPECT_THROW(cuda::dt_softplus(nullptr, 4, 1, 4, d_bias.view(), 0.f, INFINITY, nullptr),
               std::invalid_argument);
}

}  // namespace
}  // namespace ringscan::kernels
