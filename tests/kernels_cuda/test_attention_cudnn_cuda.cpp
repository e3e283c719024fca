// cuDNN's fused attention (cuda::attention_cudnn_fwd) against the plain-loop
// reference (ref::attention_block + ref::attention_finalize) on bf16-rounded
// inputs, and its statistics against the reference's m + log(l). Compiled only
// with RINGSCAN_WITH_CUDNN (CMake found cuDNN 9 and cudnn-frontend); it cannot
// be emulated (tools/cuda_emu compiles this file empty), so scripts/gpu-check.sh
// is where it runs. Without a GPU the whole binary reports "skipped: no GPU".
//
// Tolerances. The reference runs in double on the same bf16 values, so the
// products are the same; what differs (bf16 keeps 8 significant bits: a value
// rounds with relative error <= 2^-8, and one in [0.5, 1) with absolute error
// <= 2^-9):
//  - the softmax weights p = exp(s - m) in [0, 1] are rounded to bf16 before
//    P V (flash attention), relative error <= 2^-8 each, so the output
//    sum(p v) / l moves by at most 2^-8 * max|v| = 3.9e-3 (v in [-1, 1]);
//  - the output is rounded to bf16 once: |O| <= max|v| = 1, so <= 2^-9 =
//    2.0e-3 more;
//  so 6e-3 absolute per element. Those errors have random signs: the mean
//  error over a case is checked at 5e-4 (as the mma kernel's test);
//  - lse: fp32 scores (sums of exact products over head_dim 128, |q|, |k| <= 2:
//    ~1e-5 typically, 1e-4 allowed as for the mma kernel's running max) and
//    the fp32 sum of the weights (relative 2e-4, so 2e-4 in its log): 3e-4.
// What a wrong layout, head or mask does: a wrong GQA head or stride moves
// outputs by O(0.1) and lse by O(1); one key too many or too few changes a
// row's lse by about 1 / (visible keys) (> 1e-3 here) and its output by
// O(1e-2); transposed statistics are O(1) off.
#ifdef RINGSCAN_WITH_CUDNN
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <vector>

#include "attention.h"
#include "cuda_test_util.h"
#include "kernels/attention_test_util.h"

namespace ringscan::kernels {
namespace {

constexpr double kOutTol = 6e-3;
constexpr double kMeanOutTol = 5e-4;
constexpr double kLseTol = 3e-4;

using Inputs = test::AttentionInputs;
using cuda::CudnnAttention;
using cuda::CudnnMask;


// The reference positions of a mask: top_left is a diagonal block (equal
// positions), bottom_right puts the last query at the last key.
int64_t q_pos0_of(CudnnMask mask, int64_t lq, int64_t lk) {
  return mask == CudnnMask::bottom_right ? lk - lq : 0;
}

struct RefResult {
  std::vector<float> out;  // [lq, q_heads * head_dim]
  std::vector<double> lse;  // [lq, q_heads]
};
RefResult reference(const Inputs& in, CudnnMask mask, float scale) {
  test::AttentionState st(in.s, in.lq);
  ref::attention_init(in.s, in.lq, st.acc.data(), st.m.data(), st.l.data());
  ref::attention_block(in.s, in.q.data(), in.ld_q, in.lq, q_pos0_of(mask, in.lq, in.lk), in.k.data(), in.ld_k,
                       in.v.data(), in.ld_v, in.lk, 0, scale, mask != CudnnMask::none, st.acc.data(), st.m.data(),
                       st.l.data());
  RefResult r{test::ref_finalize(in.s, in.lq, st), std::vector<double>(st.m.size())};
  for (size_t i = 0; i < st.m.size(); ++i) r.lse[i] = double(st.m[i]) + std::log(double(st.l[i]));
  return r;
}

// Device inputs (bf16) and outputs of one call.
struct CudnnRun {
  CudnnAttention a;
  test::DeviceArray<uint16_t> q, k, v;
  test::DeviceArray<uint16_t> out16;
  test::DeviceArray<float> out32, lse, ws;
  size_t ws_bytes = 0;

  CudnnRun(const Inputs& in, CudnnMask mask, float scale, int64_t ld_out, DType out_dtype)
      : q(test::to_bf16(in.q)), k(test::to_bf16(in.k)), v(test::to_bf16(in.v)), lse(in.lq * in.s.q_heads) {
    a.s = in.s;
    a.lq = in.lq, a.lk = in.lk;
    a.ld_q = in.ld_q, a.ld_k = in.ld_k, a.ld_v = in.ld_v, a.ld_out = ld_out;
    a.mask = mask, a.scale = scale, a.out_dtype = out_dtype;
    if (out_dtype == DType::BF16)
      out16 = test::DeviceArray<uint16_t>(std::vector<uint16_t>(in.lq * ld_out, f32_to_bf16(7.f)));  // sentinel
    else
      out32 = test::DeviceArray<float>(std::vector<float>(in.lq * ld_out, 7.f));
    ws_bytes = cuda::attention_cudnn_workspace(a);
    ws = test::DeviceArray<float>((ws_bytes + 3) / 4);
  }
  void* out() const { return a.out_dtype == DType::BF16 ? static_cast<void*>(out16.get()) : out32.get(); }
  void go() {
    cuda::attention_cudnn_fwd(a, q.get(), k.get(), v.get(), out(), lse.get(), Workspace{ws.get(), ws_bytes}, nullptr);
  }
  // The output as fp32 [lq, ld_out].
  std::vector<float> out_host() const {
    return a.out_dtype == DType::BF16 ? test::from_bf16(out16.download()) : out32.download();
  }
};

void expect_matches(const Inputs& in, CudnnMask mask, float scale, const CudnnRun& run) {
  const RefResult want = reference(in, mask, scale);
  const int64_t W = in.s.q_heads * in.s.head_dim;
  const std::vector<float> got = run.out_host();
  EXPECT_TRUE(test::all_close(got.data(), run.a.ld_out, want.out.data(), W, in.lq, W, kOutTol, 0));
  double sum = 0;
  for (int64_t i = 0; i < in.lq; ++i)
    for (int64_t c = 0; c < W; ++c) sum += std::fabs(double(got[i * run.a.ld_out + c]) - want.out[i * W + c]);
  EXPECT_LT(sum / double(in.lq * W), kMeanOutTol);
  // Columns past the heads in a padded output keep the sentinel.
  for (int64_t i = 0; i < in.lq; ++i)
    for (int64_t c = W; c < run.a.ld_out; ++c)
      ASSERT_EQ(got[i * run.a.ld_out + c], 7.f) << "padding written at row " << i << ", column " << c;
  const std::vector<float> lse = run.lse.download();
  std::vector<float> want_lse(want.lse.begin(), want.lse.end());
  EXPECT_TRUE(test::all_close(lse, want_lse, kLseTol, 0));
}

struct Case {
  AttentionShape s;
  int64_t lq, lk, pad;
  CudnnMask mask;
  const char* what;
};

void run_case(const Case& c, DType out_dtype = DType::BF16, int64_t out_pad = 0, uint64_t seed = 11) {
  SCOPED_TRACE(std::string(c.what) + (out_dtype == DType::F32 ? ", F32 out" : ", BF16 out"));
  const float scale = 1.f / std::sqrt(float(c.s.head_dim));
  const Inputs in = test::bf16_rounded(test::make_attention_inputs(c.s, c.lq, c.lk, c.pad, seed));
  CudnnRun run(in, c.mask, scale, c.s.q_heads * c.s.head_dim + out_pad, out_dtype);
  run.go();
  expect_matches(in, c.mask, scale, run);
}

TEST(AttentionCudnnCuda, ReportsVersions) {
  const int64_t lib = cuda::attention_cudnn_version(), hdr = cuda::attention_cudnn_compiled_version();
  std::printf("cuDNN library %lld, headers %lld\n", static_cast<long long>(lib), static_cast<long long>(hdr));
  EXPECT_GE(lib, 90000);
  EXPECT_LT(lib, 100000);
}

// The nano-4b attention (GQA 40/8, head_dim 128) in the three masks.
TEST(AttentionCudnnCuda, Nano4bShapeMatchesReference) {
  const AttentionShape s{40, 8, 128};
  run_case({s, 300, 300, 0, CudnnMask::top_left, "diagonal block lq = lk = 300, top_left"});
  run_case({s, 200, 700, 0, CudnnMask::bottom_right, "queries after a cache: lq 200, lk 700, bottom_right"});
  run_case({s, 100, 300, 0, CudnnMask::none, "non-causal lq 100, lk 300"});
}

// head_dim 64, padded row strides on every operand and the output, lengths
// off any tile size, short rows.
TEST(AttentionCudnnCuda, HeadDim64StridedMatchesReference) {
  run_case({{8, 2, 64}, 77, 77, 8, CudnnMask::top_left, "head_dim 64, strided, 77 x 77 top_left"}, DType::BF16, 16);
  run_case({{8, 2, 64}, 33, 130, 8, CudnnMask::bottom_right, "head_dim 64, strided, 33 x 130 bottom_right"},
           DType::BF16, 8);
  run_case({{4, 4, 64}, 1, 50, 0, CudnnMask::none, "one query (decode-like), GQA 1"});
}

// An F32 output holds exactly the widened BF16 output.
TEST(AttentionCudnnCuda, F32OutputIsTheWidenedBf16Output) {
  const AttentionShape s{40, 8, 128};
  const float scale = 1.f / std::sqrt(128.f);
  const Inputs in = test::bf16_rounded(test::make_attention_inputs(s, 96, 160, 0, 5));
  const int64_t W = s.q_heads * s.head_dim;
  CudnnRun r16(in, CudnnMask::bottom_right, scale, W, DType::BF16), r32(in, CudnnMask::bottom_right, scale, W + 4, DType::F32);
  r16.go();
  r32.go();
  const std::vector<float> a = r16.out_host(), b = r32.out_host();
  for (int64_t i = 0; i < in.lq; ++i)
    for (int64_t c = 0; c < W; ++c) ASSERT_EQ(a[i * W + c], b[i * (W + 4) + c]) << "row " << i << ", column " << c;
  EXPECT_EQ(r16.lse.download(), r32.lse.download());
  expect_matches(in, CudnnMask::bottom_right, scale, r32);
}

// The path for a cuDNN older than 9.12 (statistics written packed into the
// workspace, then transposed), forced: with an F32 output both staging areas
// of the workspace are in use.
TEST(AttentionCudnnCuda, PackedStatisticsPathMatchesReference) {
  setenv("RINGSCAN_CUDNN_PACKED_STATS", "1", 1);  // read when a plan is built: these shapes are new
  run_case({{6, 3, 64}, 45, 90, 0, CudnnMask::top_left, "packed statistics, 45 x 90 top_left"}, DType::F32, 4);
  run_case({{6, 3, 64}, 45, 90, 0, CudnnMask::bottom_right, "packed statistics, 45 x 90 bottom_right"});
  unsetenv("RINGSCAN_CUDNN_PACKED_STATS");
}

// Ring attention: queries at positions 300..449 against keys 0..449 in two
// blocks from cuDNN (keys 0..299 all visible; keys 300..449 the diagonal),
// turned into states and merged, equal the naive whole softmax.
TEST(AttentionCudnnCuda, BlocksMergeIntoTheWholeSoftmax) {
  const AttentionShape s{40, 8, 128};
  const int64_t lq = 150, L = 450, W = s.q_heads * s.head_dim, kvw = s.kv_heads * s.head_dim;
  const float scale = 1.f / std::sqrt(128.f);
  const Inputs all = test::bf16_rounded(test::make_attention_inputs(s, lq, L, 0, 23));
  const std::vector<float> naive = test::naive_attention(all, L - lq, 0, scale, true);

  Inputs past = all;  // keys 0..299
  past.lk = L - lq;
  past.k.resize(past.lk * kvw);
  past.v.resize(past.lk * kvw);
  Inputs diag = all;  // keys 300..449
  diag.lk = lq;
  diag.k.assign(all.k.begin() + (L - lq) * kvw, all.k.end());
  diag.v.assign(all.v.begin() + (L - lq) * kvw, all.v.end());

  CudnnRun rp(past, CudnnMask::none, scale, W, DType::BF16), rd(diag, CudnnMask::top_left, scale, W, DType::BF16);
  rp.go();
  rd.go();
  test::DeviceArray<float> acc(lq * W), m(lq * s.q_heads), l(lq * s.q_heads);
  test::DeviceArray<float> acc2(lq * W), m2(lq * s.q_heads), l2(lq * s.q_heads), out(lq * W);
  cuda::attention_cudnn_to_state(s, lq, rp.out16.get(), W, rp.lse.get(), acc.get(), m.get(), l.get(), nullptr);
  cuda::attention_cudnn_to_state(s, lq, rd.out16.get(), W, rd.lse.get(), acc2.get(), m2.get(), l2.get(), nullptr);
  const std::vector<float> l_host = l.download();
  for (float x : l_host) ASSERT_EQ(x, 1.f);
  cuda::attention_merge(s, lq, acc2.get(), m2.get(), l2.get(), acc.get(), m.get(), l.get());
  cuda::attention_finalize(s, lq, acc.get(), l.get(), out.get(), W);
  EXPECT_TRUE(test::all_close(out.download(), naive, kOutTol, 0));
}

// A plan is built once per distinct call and reused after.
TEST(AttentionCudnnCuda, PlansAreCachedPerShape) {
  const AttentionShape s{4, 2, 64};
  const Inputs in = test::bf16_rounded(test::make_attention_inputs(s, 64, 96, 0, 31));
  const float scale = 0.125f;
  const int64_t before = cuda::attention_cudnn_plans_built();
  CudnnRun run(in, CudnnMask::bottom_right, scale, s.q_heads * s.head_dim, DType::BF16);  // asks the workspace: builds
  EXPECT_EQ(cuda::attention_cudnn_plans_built(), before + 1);
  run.go();
  run.go();
  EXPECT_EQ(cuda::attention_cudnn_workspace(run.a), run.ws_bytes);
  EXPECT_EQ(cuda::attention_cudnn_plans_built(), before + 1) << "a repeated call built a new plan";
  CudnnRun other(in, CudnnMask::bottom_right, 0.25f, s.q_heads * s.head_dim, DType::BF16);  // another scale: another plan
  other.go();
  EXPECT_EQ(cuda::attention_cudnn_plans_built(), before + 2);
  expect_matches(in, CudnnMask::bottom_right, scale, run);
}

TEST(AttentionCudnnCuda, RejectsBadArguments) {
  CudnnAttention a;
  a.s = {5, 2, 64};  // 5 query heads over 2 KV heads
  a.lq = a.lk = 8;
  EXPECT_THROW(cuda::attention_cudnn_workspace(a), std::invalid_argument);
  a.s = {4, 2, 60};  // head_dim not a multiple of 8
  EXPECT_THROW(cuda::attention_cudnn_workspace(a), std::invalid_argument);
  a.s = {4, 2, 64};
  a.mask = CudnnMask::bottom_right;
  a.lq = 9;  // more queries than keys
  EXPECT_THROW(cuda::attention_cudnn_workspace(a), std::invalid_argument);
  a.lq = 8;
  a.ld_q = 4 * 64 + 4;  // not a multiple of 8 elements
  EXPECT_THROW(cuda::attention_cudnn_workspace(a), std::invalid_argument);
  a.ld_q = 0;
  test::DeviceArray<float> buf(8 * 4 * 64);
  EXPECT_THROW(cuda::attention_cudnn_fwd(a, buf.get(), buf.get(), buf.get(), buf.get(), nullptr, {}, nullptr),
               std::invalid_argument);  // no lse
  const size_t need = cuda::attention_cudnn_workspace(a);
  if (need > 0) {
    test::DeviceArray<float> lse(8 * 4);
    EXPECT_THROW(cuda::attention_cudnn_fwd(a, buf.get(), buf.get(), buf.get(), buf.get(), lse.get(),
                                           Workspace{buf.get(), need - 1}, nullptr),
                 std::invalid_argument);
  }
}

}  // namespace
}  // namespace ringscan::kernels
#endif  // RINGSCAN_WITH_CUDNN
