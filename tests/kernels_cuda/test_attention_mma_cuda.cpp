// The tensor-core attention (cuda::attention_block_mma) against the plain-loop
// reference, on the same cases as the fp32 kernel (test_attention_cuda.cpp),
// with q, k and v given as fp32 (rounded by the kernel) and as bf16.
//
// Tolerances. The reference runs on the bf16-rounded inputs, so the scores'
// products are the same; what differs:
//  - scores: fp32 sums of exact products over head_dim <= 256 (|q|, |k| <= 2)
//    in the tensor core's order, scaled: within ~1e-5 typically, 1e-4 in the
//    worst case we allow for the running max (a score);
//  - l sums the fp32 weights exp(s - m): relative error of the scores' error
//    plus exp2f's 2 ulp, so 2e-4 relative;
//  - the output weights P are rounded to bf16 before P V (relative error at
//    most u = 2^-8 each, bf16 having 8 significant bits), while l sums the
//    unrounded weights: an output acc / l moves by at most u * max|v| =
//    3.9e-3 (v in [-1, 1]); we allow 4e-3. The mean error is much smaller
//    (random signs), and is checked at 5e-4.
// What a wrong fragment, head or mask does: a wrong fragment index or GQA head
// moves outputs by O(0.1); one key too many or too few in a block of <= 40
// keys moves them by > 1e-2 (the cases with short key blocks catch masks).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "attention.h"
#include "attention_cuda_test_util.h"

namespace ringscan::kernels {
namespace {

constexpr test::AttentionTolerances kMmaTol{4e-3, 1e-4, 2e-4};
constexpr double kMeanOutTol = 5e-4;

using Inputs = test::AttentionInputs;

using State = test::RefAttentionState;
using DState = test::DeviceAttentionState;

// One of q, k, v on the device as fp32 or bf16.
struct DTensor {
  test::DeviceArray<float> f32;
  test::DeviceArray<uint16_t> b16;
  DTensor(const std::vector<float>& h, DType dt) {
    if (dt == DType::F32)
      f32 = test::DeviceArray<float>(h);
    else
      b16 = test::DeviceArray<uint16_t>(test::to_bf16(h));
  }
  // Element `i` (of either dtype).
  const void* at(int64_t i) const {
    return f32.get() ? static_cast<const void*>(f32.get() + i) : static_cast<const void*>(b16.get() + i);
  }
};
struct DQkv {
  DType dtype;
  DTensor q, k, v;
  DQkv(const Inputs& in, DType dt) : dtype(dt), q(in.q, dt), k(in.k, dt), v(in.v, dt) {}
};

// Keys [j0, j1) folded into the device state; workspace as the op asks.
void fold_mma(const Inputs& in, const DQkv& kv, const DQkv& qs, int64_t q_pos0, int64_t j0, int64_t j1,
              int64_t k_pos0, float scale, bool causal, DState& st, bool with_workspace = true) {
  const size_t ws_bytes = with_workspace ? cuda::attention_block_mma_workspace(in.s, in.lq, j1 - j0) : 0;
  test::DeviceArray<float> ws((ws_bytes + 3) / 4);
  cuda::attention_block_mma(in.s, kv.dtype, qs.q.at(0), in.ld_q, in.lq, q_pos0, kv.k.at(j0 * in.ld_k), in.ld_k,
                            kv.v.at(j0 * in.ld_v), in.ld_v, j1 - j0, k_pos0 + j0, scale, causal, st.acc.get(),
                            st.m.get(), st.l.get(), Workspace{ws.get(), ws_bytes}, nullptr);
}
void expect_mean_output_error_small(const AttentionShape& s, int64_t lq, const test::AttentionState& got,
                                    const test::AttentionState& expect) {
  const std::vector<float> a = test::ref_finalize(s, lq, got), b = test::ref_finalize(s, lq, expect);
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) sum += std::fabs(double(a[i]) - b[i]);
  EXPECT_LT(sum / std::max<size_t>(a.size(), 1), kMeanOutTol);
}

// One block folded into a state that already holds an earlier block of 5
// keys (a loaded state is rescaled), against the reference, for both input
// dtypes; split cases also run without workspace (no split).
TEST(AttentionMmaCuda, BlockMatchesReference) {
  // Both input dtypes with 4 warps per CTA (the default), bf16 with 8.
  for (const auto& [dt, warps] : {std::pair{DType::F32, 4}, std::pair{DType::BF16, 4}, std::pair{DType::BF16, 8}}) {
    cuda::set_attention_mma_warps(warps);
    for (const test::AttentionBlockCase& c : test::attention_block_cases()) {
      SCOPED_TRACE(test::describe(c) + (dt == DType::F32 ? " f32 in" : " bf16 in") + ", " + std::to_string(warps) +
                   " warps");
      const float scale = 1.f / std::sqrt(float(c.s.head_dim));
      const Inputs prev = test::bf16_rounded(test::make_attention_inputs(c.s, c.lq, 5, c.pad, 1));
      const Inputs in = test::bf16_rounded(test::make_attention_inputs(c.s, c.lq, c.lk, c.pad, 4));
      const DQkv d_prev(prev, dt), d_in(in, dt);
      State expect(c.s, c.lq);
      // Both blocks use in's queries: the state belongs to them.
      test::ref_fold(prev, in, c.q_pos0, 0, 5, c.k_pos0 - 5, scale, c.causal, expect);
      test::ref_fold(in, in, c.q_pos0, 0, c.lk, c.k_pos0, scale, c.causal, expect);
      for (const bool ws : {true, false}) {
        DState got(c.s, c.lq);
        fold_mma(prev, d_prev, d_in, c.q_pos0, 0, 5, c.k_pos0 - 5, scale, c.causal, got, ws);
        fold_mma(in, d_in, d_in, c.q_pos0, 0, c.lk, c.k_pos0, scale, c.causal, got, ws);
        const test::AttentionState h = got.download(c.s, c.lq);
        test::expect_attention_states_close(c.s, c.lq, h, expect, kMmaTol);
        expect_mean_output_error_small(c.s, c.lq, h, expect);
        if (c.lq > 1) break;  // only short queries split
      }
    }
  }
  cuda::set_attention_mma_warps(4);
}

// The nano-4b attention shape (GQA 40/8, head_dim 128) over a causal
// diagonal block in three key blocks, equal to the naive whole softmax; the
// blocks' states are carried from call to call as ring attention does.
TEST(AttentionMmaCuda, Nano4bShapeInKeyBlocksEqualsWholeSoftmax) {
  const AttentionShape s{40, 8, 128};
  const int64_t L = 150, W = s.q_heads * s.head_dim;
  const float scale = 1.f / std::sqrt(128.f);
  const Inputs in = test::bf16_rounded(test::make_attention_inputs(s, L, L, 0, 17));
  const std::vector<float> naive = test::naive_attention(in, 0, 0, scale, true);
  const DQkv d_in(in, DType::BF16);
  DState st(s, L);
  for (const auto& [j0, j1] : std::vector<std::pair<int64_t, int64_t>>{{100, 150}, {0, 64}, {64, 100}})
    fold_mma(in, d_in, d_in, 0, j0, j1, 0, scale, true, st);
  test::DeviceArray<float> out(L * W);
  cuda::attention_finalize(s, L, st.acc.get(), st.l.get(), out.get(), W);
  EXPECT_TRUE(test::all_close(out.download(), naive, kMmaTol.out_atol, 0));
}

TEST(AttentionMmaCuda, RejectsBadShapesAndDtypes) {
  const float* q = nullptr;
  float* st = nullptr;
  EXPECT_THROW(cuda::attention_block_mma({5, 2, 4}, DType::F32, q, 20, 1, 0, q, 8, q, 8, 1, 0, 1.f, true, st, st, st,
                                         {}, nullptr),
               std::invalid_argument);
  EXPECT_THROW(cuda::attention_block_mma({2, 1, 64}, DType::F16, q, 128, 1, 0, q, 64, q, 64, 1, 0, 1.f, true, st, st,
                                         st, {}, nullptr),
               std::invalid_argument);
}

}  // namespace
}  // namespace ringscan::kernels
