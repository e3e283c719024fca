// The tensor-core attention (cuda::attention_block_mma): the nano-4b shape
// over key blocks against the naive whole softmax, and its argument checks.
// Its blocks against the reference on the shared case list are op cases of
// tests/backend_ops/ops_attention.cpp (with the tolerances and why).
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
