// Block-wise GQA attention on the GPU: masked rows, merges, key blocks and
// query segments against the plain-loop reference and a naive whole-softmax
// definition, mirroring tests/kernels/test_attention.cpp. One block against
// the reference on the shared case list is an op case of tests/backend_ops.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "attention.h"
#include "attention_cuda_test_util.h"

namespace ringscan::kernels {
namespace {

// Tolerances. The GPU computes each score as an fp32 FMA chain over head_dim
// (inputs in [-2, 2], head_dim <= 256), the reference in double: the score's
// rounding error is typically sqrt(head_dim) * 2^-24 * |partial sums| * scale
// ~ 1e-6 (worst case ~10x). A weight exp2f((s - m) log2 e) inherits that as a
// relative error, plus 2 ulp of exp2f and the rounding of the product; l and
// acc are fp32 sums over key tiles (and split partials). Outputs are weighted
// means of values in [-1, 1], so they agree to a few 1e-6; we allow 2e-5 (the
// CPU backend's test allows 1e-5 for the same arithmetic in another order). A
// key attended that should be masked, one key too few, or a wrong GQA head
// moves outputs by 1e-3 to 1e-1, far outside.
constexpr double kOutAtol = 2e-5;
constexpr double kMaxAtol = 2e-5;  // the running max is a score (|score| <= ~10 here)
constexpr double kSumRtol = 2e-5;  // l, compared at the reference's max: a sum of weights

constexpr test::AttentionTolerances kStateTol{kOutAtol, kMaxAtol, kSumRtol};

using Inputs = test::AttentionInputs;
using test::make_attention_inputs;
using test::naive_attention;

using State = test::RefAttentionState;
using DState = test::DeviceAttentionState;

// Inputs on the device.
struct DInputs {
  test::DeviceArray<float> q, k, v;
  explicit DInputs(const Inputs& in) : q(in.q), k(in.k), v(in.v) {}
};

// Keys [j0, j1) of `in` (positions k_pos0 + j0 ...) folded into a host state
// by the reference, or into a device state by the CUDA kernel. `q_from` lets
// a block use another Inputs' queries (same lq and ld_q).
using test::ref_fold;
void fold_cuda(const Inputs& in, const DInputs& kv, const DInputs& qs, int64_t q_pos0, int64_t j0,
               int64_t j1, int64_t k_pos0, float scale, bool causal, DState& st) {
  cuda::attention_block(in.s, qs.q.get(), in.ld_q, in.lq, q_pos0, kv.k.get() + j0 * in.ld_k,
                        in.ld_k, kv.v.get() + j0 * in.ld_v, in.ld_v, j1 - j0, k_pos0 + j0, scale,
                        causal, st.acc.get(), st.m.get(), st.l.get());
}

// Rows that see no key keep m = -inf, l = 0 and finalize to zeros, and merging
// such a state in either direction is harmless (no NaN).
TEST(AttentionCuda, FullyMaskedRowsAndMerges) {
  const AttentionShape s{4, 2, 8};
  const int64_t lq = 3, lk = 4;
  const Inputs in = make_attention_inputs(s, lq, lk, 0, 7);
  const DInputs d_in(in);
  const float scale = 0.35f;
  DState empty(s, lq), seen(s, lq);
  fold_cuda(in, d_in, d_in, 0, 0, lk, 10, scale, true, empty);  // keys at 10.., queries at 0..2
  const State e = empty.download(s, lq);
  test::expect_attention_state_empty(e);
  test::DeviceArray<float> d_out(std::vector<float>(lq * s.q_heads * s.head_dim, NAN));
  cuda::attention_finalize(s, lq, empty.acc.get(), empty.l.get(), d_out.get(), s.q_heads * s.head_dim);
  for (float o : d_out.download()) EXPECT_EQ(o, 0.f);

  fold_cuda(in, d_in, d_in, 10, 0, lk, 0, scale, true, seen);  // all visible
  const State sn = seen.download(s, lq);
  auto upload = [&](const State& h) {
    DState d(s, lq);
    d.acc.upload(h.acc), d.m.upload(h.m), d.l.upload(h.l);
    return d;
  };
  {
    DState a = upload(sn);  // -inf on the incoming side
    cuda::attention_merge(s, lq, empty.acc.get(), empty.m.get(), empty.l.get(), a.acc.get(),
                          a.m.get(), a.l.get());
    const State r = a.download(s, lq);
    EXPECT_TRUE(test::all_close(r.acc, sn.acc, 0, 0));
    EXPECT_TRUE(test::all_close(r.l, sn.l, 0, 0));
    EXPECT_TRUE(test::all_close(r.m, sn.m, 0, 0));
  }
  {
    DState a = upload(e);  // -inf on the receiving side
    cuda::attention_merge(s, lq, seen.acc.get(), seen.m.get(), seen.l.get(), a.acc.get(),
                          a.m.get(), a.l.get());
    const State r = a.download(s, lq);
    EXPECT_TRUE(test::all_close(r.acc, sn.acc, 0, 0));
    EXPECT_TRUE(test::all_close(r.l, sn.l, 0, 0));
    EXPECT_TRUE(test::all_close(r.m, sn.m, 0, 0));
  }
  {
    DState a = upload(e);  // both empty
    cuda::attention_merge(s, lq, empty.acc.get(), empty.m.get(), empty.l.get(), a.acc.get(),
                          a.m.get(), a.l.get());
    test::expect_attention_state_empty(a.download(s, lq));
  }
}

// What ring attention relies on: causal attention over all keys equals (a) the
// keys folded in several blocks, and (b) partial states over disjoint key
// ranges computed independently and merged (last to first), and both equal
// the naive whole softmax.
TEST(AttentionCuda, BlocksAndMergedPartialsEqualWholeSoftmax) {
  const AttentionShape s{6, 2, 32};
  const int64_t L = 150;
  const float scale = 1.f / std::sqrt(32.f);
  const Inputs in = make_attention_inputs(s, L, L, 3, 11);
  const DInputs d_in(in);
  const std::vector<float> naive = naive_attention(in, 0, 0, scale, true);
  const int64_t W = s.q_heads * s.head_dim;
  auto finalized = [&](const DState& st) {
    test::DeviceArray<float> out(L * W);
    cuda::attention_finalize(s, L, st.acc.get(), st.l.get(), out.get(), W);
    return out.download();
  };
  const std::vector<std::vector<int64_t>> splits = {
      {0, 150}, {0, 1, 150}, {0, 37, 74, 111, 150}, {0, 64, 65, 149, 150}};
  for (const auto& cut : splits) {
    SCOPED_TRACE(testing::Message() << cut.size() - 1 << " key blocks");
    DState seq(s, L);
    for (size_t b = 0; b + 1 < cut.size(); ++b)
      fold_cuda(in, d_in, d_in, 0, cut[b], cut[b + 1], 0, scale, true, seq);
    EXPECT_TRUE(test::all_close(finalized(seq), naive, kOutAtol, 0)) << "sequential";

    DState merged(s, L);
    for (size_t b = cut.size() - 1; b-- > 0;) {
      DState part(s, L);
      fold_cuda(in, d_in, d_in, 0, cut[b], cut[b + 1], 0, scale, true, part);
      cuda::attention_merge(s, L, part.acc.get(), part.m.get(), part.l.get(), merged.acc.get(),
                            merged.m.get(), merged.l.get());
    }
    EXPECT_TRUE(test::all_close(finalized(merged), naive, kOutAtol, 0)) << "merged";
  }
}

// Ring attention as a rank sees it (queries at [50, 100) meet key segments
// [100, 150), [0, 50), [50, 100)), and decode: one query at the last position
// over three KV shards, finalized into a strided output.
TEST(AttentionCuda, QuerySegmentsAndDecodeShards) {
  const AttentionShape s{8, 4, 16};
  const int64_t L = 150;
  const float scale = 0.25f;
  const Inputs in = make_attention_inputs(s, L, L, 0, 21);
  const DInputs d_in(in);
  const std::vector<float> naive = naive_attention(in, 0, 0, scale, true);
  const int64_t W = s.q_heads * s.head_dim;

  Inputs seg = in;  // queries 50..99 only
  seg.lq = 50;
  seg.q.assign(in.q.begin() + 50 * in.ld_q, in.q.begin() + 100 * in.ld_q);
  const DInputs d_seg(seg);
  DState st(s, 50);
  for (int64_t k0 : {100, 0, 50}) {
    DState part(s, 50);
    fold_cuda(seg, d_in, d_seg, 50, k0, k0 + 50, 0, scale, true, part);
    cuda::attention_merge(s, 50, part.acc.get(), part.m.get(), part.l.get(), st.acc.get(),
                          st.m.get(), st.l.get());
  }
  test::DeviceArray<float> out(50 * W);
  cuda::attention_finalize(s, 50, st.acc.get(), st.l.get(), out.get(), W);
  EXPECT_TRUE(test::all_close(out.download().data(), W, naive.data() + 50 * W, W, 50, W, kOutAtol, 0));

  Inputs last = in;  // decode: the query at position 149
  last.lq = 1;
  last.q.assign(in.q.begin() + 149 * in.ld_q, in.q.begin() + 150 * in.ld_q);
  const DInputs d_last(last);
  DState dec(s, 1);
  for (int64_t k0 : {0, 60, 120}) {
    DState part(s, 1);
    fold_cuda(last, d_in, d_last, 149, k0, std::min<int64_t>(k0 + 60, L), 0, scale, true, part);
    cuda::attention_merge(s, 1, part.acc.get(), part.m.get(), part.l.get(), dec.acc.get(),
                          dec.m.get(), dec.l.get());
  }
  test::DeviceArray<float> out1(std::vector<float>(W + 9, -7.f));
  cuda::attention_finalize(s, 1, dec.acc.get(), dec.l.get(), out1.get(), W + 9);
  const std::vector<float> h1 = out1.download();
  EXPECT_TRUE(test::all_close(h1.data(), W, naive.data() + 149 * W, W, 1, W, kOutAtol, 0));
  EXPECT_TRUE(test::padding_untouched(h1.data(), W + 9, 1, W, -7.f));
}

TEST(AttentionCuda, RejectsBadShapes) {
  const float* q = nullptr;
  float* st = nullptr;
  EXPECT_THROW(cuda::attention_block({5, 2, 4}, q, 20, 1, 0, q, 8, q, 8, 1, 0, 1.f, true, st, st, st),
               std::invalid_argument);
  EXPECT_THROW(cuda::attention_block({2, 1, 257}, q, 514, 1, 0, q, 257, q, 257, 1, 0, 1.f, true, st,
                                     st, st),
               std::invalid_argument);
}

}  // namespace
}  // namespace ringscan::kernels
