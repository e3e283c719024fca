#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "attention.h"
#include "kernels/attention_test_util.h"
#include "kernel_test_util.h"

namespace ringscan::kernels {
namespace {

// Tolerances. Scores are dot products of head_dim <= 128 fp32 products of
// inputs in [-2, 2], scaled by 1/sqrt(head_dim): the fast version's fp32
// rounding in a score is typically sqrt(128) * 2^-24 * |q k| * scale ~ 1e-6
// (the worst case is ~10x that); a weight exp(s - m) inherits it as a relative
// error (plus ~2 ulp of the vectorised exp), and an output is a weighted mean
// of values in [-1, 1], so outputs agree to ~1e-6 (observed: < 1e-6). We allow
// 1e-5. A key attended that should be masked, one key too few, or a wrong GQA
// head moves outputs by 1e-3 to 1e-1.
constexpr double kOutAtol = 1e-5;
constexpr double kMaxAtol = 1e-5;  // the running max is a score
constexpr double kSumRtol = 2e-5;  // l (compared at the same max): a sum of weights

constexpr test::AttentionTolerances kStateTol{kOutAtol, kMaxAtol, kSumRtol};

using Inputs = test::AttentionInputs;
using State = test::AttentionState;
using test::make_attention_inputs;
using test::naive_attention;
using test::ref_finalize;

// The tests below that call cpu:: run once per implementation of its block
// kernel (kernels/attention.h, CpuAttentionPath): the portable sgemm-tile one
// and the fused AVX-512 one, each forced for every shape (so the AVX-512 one
// meets tasks of 1..15 packed rows too, which Auto leaves to the portable one).
class AttentionPaths : public ::testing::TestWithParam<cpu::CpuAttentionPath> {
 protected:
  void SetUp() override {
    if (GetParam() == cpu::CpuAttentionPath::Avx512 && !cpu::attention_avx512_available())
      GTEST_SKIP() << "this CPU has no AVX-512F: the AVX-512 attention kernel cannot run (nor would it be used) here";
    path_.emplace(GetParam());
  }
  std::optional<test::CpuAttentionPathGuard> path_;
};
INSTANTIATE_TEST_SUITE_P(Cpu, AttentionPaths,
                         ::testing::Values(cpu::CpuAttentionPath::Portable, cpu::CpuAttentionPath::Avx512),
                         [](const auto& info) {
                           return info.param == cpu::CpuAttentionPath::Portable ? "Portable" : "Avx512";
                         });

// Folds keys [j0, j1) of `in` (positions k_pos0 + j0 ...) into st.
template <class BlockFn>
void fold(BlockFn block, const Inputs& in, int64_t q_pos0, int64_t j0, int64_t j1, int64_t k_pos0,
          float scale, bool causal, State& st) {
  block(in.s, in.q.data(), in.ld_q, in.lq, q_pos0, in.k.data() + j0 * in.ld_k, in.ld_k,
        in.v.data() + j0 * in.ld_v, in.ld_v, j1 - j0, k_pos0 + j0, scale, causal, st.acc.data(),
        st.m.data(), st.l.data());
}

// Rows that see no key at all keep m = -inf, l = 0, finalize to zeros, and
// merging such a state in either direction is harmless (no NaN).
TEST_P(AttentionPaths, FullyMaskedRowsAndMerges) {
  const AttentionShape s{4, 2, 8};
  const int64_t lq = 3, lk = 4;
  const Inputs in = make_attention_inputs(s, lq, lk, 0, 7);
  const float scale = 0.35f;
  for (int backend = 0; backend < 2; ++backend) {
    auto block = backend ? cpu::attention_block : ref::attention_block;
    auto merge = backend ? cpu::attention_merge : ref::attention_merge;
    auto finalize_fn = backend ? cpu::attention_finalize : ref::attention_finalize;
    State empty(s, lq), seen(s, lq), a(s, lq);
    cpu::attention_init(s, lq, empty.acc.data(), empty.m.data(), empty.l.data());
    // Keys at positions 10.., queries at 0..2: all masked.
    fold(block, in, 0, 0, lk, 10, scale, true, empty);
    for (size_t r = 0; r < empty.m.size(); ++r) {
      EXPECT_EQ(empty.m[r], -INFINITY);
      EXPECT_EQ(empty.l[r], 0.f);
    }
    std::vector<float> out(lq * s.q_heads * s.head_dim, NAN);
    finalize_fn(s, lq, empty.acc.data(), empty.l.data(), out.data(), s.q_heads * s.head_dim);
    for (float o : out) EXPECT_EQ(o, 0.f);

    ref::attention_init(s, lq, seen.acc.data(), seen.m.data(), seen.l.data());
    fold(block, in, 10, 0, lk, 0, scale, true, seen);  // all visible
    a = seen;
    merge(s, lq, empty.acc.data(), empty.m.data(), empty.l.data(), a.acc.data(), a.m.data(),
          a.l.data());  // -inf on the incoming side
    EXPECT_TRUE(test::all_close(a.acc, seen.acc, 0, 0));
    EXPECT_TRUE(test::all_close(a.l, seen.l, 0, 0));
    a = empty;
    merge(s, lq, seen.acc.data(), seen.m.data(), seen.l.data(), a.acc.data(), a.m.data(),
          a.l.data());  // -inf on the receiving side
    EXPECT_TRUE(test::all_close(a.acc, seen.acc, 0, 0));
    EXPECT_TRUE(test::all_close(a.l, seen.l, 0, 0));
    EXPECT_TRUE(test::all_close(a.m, seen.m, 0, 0));
    a = empty;
    merge(s, lq, empty.acc.data(), empty.m.data(), empty.l.data(), a.acc.data(), a.m.data(),
          a.l.data());  // both empty
    test::expect_attention_state_empty(a);
  }
}

// The property ring attention relies on: causal attention over all keys equals
// (a) the keys folded in several blocks, in any block sizes, and (b) partial
// states over disjoint key ranges computed independently and merged in any
// order; and the reference's one-block result equals naive softmax attention.
TEST_P(AttentionPaths, BlocksAndMergedPartialsEqualWholeSoftmax) {
  const AttentionShape s{6, 2, 32};
  const int64_t L = 150;
  const float scale = 1.f / std::sqrt(32.f);
  const Inputs in = make_attention_inputs(s, L, L, 3, 11);
  const std::vector<float> naive = naive_attention(in, 0, 0, scale, true);

  State whole(s, L);
  ref::attention_init(s, L, whole.acc.data(), whole.m.data(), whole.l.data());
  fold(ref::attention_block, in, 0, 0, L, 0, scale, true, whole);
  EXPECT_TRUE(test::all_close(ref_finalize(s, L, whole), naive, 1e-6, 0)) << "reference, one block";

  const std::vector<std::vector<int64_t>> splits = {
      {0, 1, 150}, {0, 37, 74, 111, 150}, {0, 64, 65, 149, 150}};
  for (int backend = 0; backend < 2; ++backend) {
    auto block = backend ? cpu::attention_block : ref::attention_block;
    auto merge = backend ? cpu::attention_merge : ref::attention_merge;
    for (const auto& cut : splits) {
      SCOPED_TRACE(testing::Message()
                   << (backend ? "cpu" : "ref") << ", " << cut.size() - 1 << " key blocks");
      // (a) sequential blocks into one state.
      State seq(s, L);
      ref::attention_init(s, L, seq.acc.data(), seq.m.data(), seq.l.data());
      for (size_t b = 0; b + 1 < cut.size(); ++b)
        fold(block, in, 0, cut[b], cut[b + 1], 0, scale, true, seq);
      EXPECT_TRUE(test::all_close(ref_finalize(s, L, seq), naive, kOutAtol, 0)) << "sequential";

      // (b) one partial per key range, merged last-to-first (as a ring delivers
      // blocks in rank order, not position order).
      State merged(s, L);
      ref::attention_init(s, L, merged.acc.data(), merged.m.data(), merged.l.data());
      for (size_t b = cut.size() - 1; b-- > 0;) {
        State part(s, L);
        ref::attention_init(s, L, part.acc.data(), part.m.data(), part.l.data());
        fold(block, in, 0, cut[b], cut[b + 1], 0, scale, true, part);
        merge(s, L, part.acc.data(), part.m.data(), part.l.data(), merged.acc.data(),
              merged.m.data(), merged.l.data());
      }
      EXPECT_TRUE(test::all_close(ref_finalize(s, L, merged), naive, kOutAtol, 0)) << "merged";
    }
  }
}

// Ring attention as a rank sees it: its query segment at positions [50, 100)
// meets key segments [0, 50), [50, 100), [100, 150) (the last wholly in its
// future); the merged result equals rows 50..99 of whole-sequence attention.
// Decode: one query at the last position over three KV shards.
TEST_P(AttentionPaths, QuerySegmentsAndDecodeShards) {
  const AttentionShape s{8, 4, 16};
  const int64_t L = 150;
  const float scale = 0.25f;
  const Inputs in = make_attention_inputs(s, L, L, 0, 21);
  const std::vector<float> naive = naive_attention(in, 0, 0, scale, true);
  const int64_t W = s.q_heads * s.head_dim;

  Inputs seg = in;  // queries 50..99 only
  seg.lq = 50;
  seg.q.assign(in.q.begin() + 50 * in.ld_q, in.q.begin() + 100 * in.ld_q);
  State st(s, 50);
  cpu::attention_init(s, 50, st.acc.data(), st.m.data(), st.l.data());
  for (int64_t k0 : {100, 0, 50}) {
    State part(s, 50);
    cpu::attention_init(s, 50, part.acc.data(), part.m.data(), part.l.data());
    fold(cpu::attention_block, seg, 50, k0, k0 + 50, 0, scale, true, part);
    cpu::attention_merge(s, 50, part.acc.data(), part.m.data(), part.l.data(), st.acc.data(),
                         st.m.data(), st.l.data());
  }
  std::vector<float> out(50 * W);
  cpu::attention_finalize(s, 50, st.acc.data(), st.l.data(), out.data(), W);
  EXPECT_TRUE(test::all_close(out.data(), W, naive.data() + 50 * W, W, 50, W, kOutAtol, 0));

  Inputs last = in;  // decode: the query at position 149
  last.lq = 1;
  last.q.assign(in.q.begin() + 149 * in.ld_q, in.q.begin() + 150 * in.ld_q);
  State dec(s, 1);
  cpu::attention_init(s, 1, dec.acc.data(), dec.m.data(), dec.l.data());
  for (int64_t k0 : {0, 60, 120}) {
    State part(s, 1);
    cpu::attention_init(s, 1, part.acc.data(), part.m.data(), part.l.data());
    fold(cpu::attention_block, last, 149, k0, std::min<int64_t>(k0 + 60, L), 0, scale, true, part);
    cpu::attention_merge(s, 1, part.acc.data(), part.m.data(), part.l.data(), dec.acc.data(),
                         dec.m.data(), dec.l.data());
  }
  // Finalize into a strided output: padding must stay untouched.
  std::vector<float> out1(W + 9, -7.f);
  cpu::attention_finalize(s, 1, dec.acc.data(), dec.l.data(), out1.data(), W + 9);
  EXPECT_TRUE(test::all_close(out1.data(), W, naive.data() + 149 * W, W, 1, W, kOutAtol, 0));
  EXPECT_TRUE(test::padding_untouched(out1.data(), W + 9, 1, W, -7.f));
}

// bf16 K/V used in place (a saved state's shard, runtime/saved_state.h) give the
// very bits of their widened fp32 copy through the fp32 kernel: ringscan ask's
// answers from a mapped bf16 state equal those from the state widened in memory.
// Every block case (strided rows, several key tiles, GQA 1..8), folded into a
// state that already holds 5 keys. The reference's bf16 form: the same, to its own bits.
TEST_P(AttentionPaths, Bf16KvEqualsWidenedFp32BitForBit) {
  auto same_bits = [](const State& a, const State& b) {
    return std::memcmp(a.acc.data(), b.acc.data(), a.acc.size() * 4) == 0 &&
           std::memcmp(a.m.data(), b.m.data(), a.m.size() * 4) == 0 &&
           std::memcmp(a.l.data(), b.l.data(), a.l.size() * 4) == 0;
  };
  for (const test::AttentionBlockCase& c : test::attention_block_cases()) {
    SCOPED_TRACE(test::describe(c));
    const float scale = 1.f / std::sqrt(float(c.s.head_dim));
    const Inputs in = test::bf16_rounded(make_attention_inputs(c.s, c.lq, c.lk, c.pad, 4));
    const Inputs prev = test::bf16_rounded(make_attention_inputs(c.s, c.lq, 5, c.pad, 1));
    const std::vector<uint16_t> k16 = test::to_bf16(in.k), v16 = test::to_bf16(in.v);
    const std::vector<uint16_t> pk16 = test::to_bf16(prev.k), pv16 = test::to_bf16(prev.v);
    for (int backend = 0; backend < 2; ++backend) {
      auto block = backend ? cpu::attention_block : ref::attention_block;
      auto block_kv = backend ? cpu::attention_block_kv : ref::attention_block_kv;
      State wide(c.s, c.lq), in_place(c.s, c.lq);
      for (State* st : {&wide, &in_place}) cpu::attention_init(c.s, c.lq, st->acc.data(), st->m.data(), st->l.data());
      for (const auto& [x, k, v, lk, k_pos0] :
           {std::tuple{&prev, &pk16, &pv16, int64_t{5}, c.k_pos0 - 5}, std::tuple{&in, &k16, &v16, c.lk, c.k_pos0}}) {
        block(c.s, in.q.data(), in.ld_q, c.lq, c.q_pos0, x->k.data(), in.ld_k, x->v.data(), in.ld_v, lk, k_pos0,
              scale, c.causal, wide.acc.data(), wide.m.data(), wide.l.data());
        block_kv(c.s, in.q.data(), in.ld_q, c.lq, c.q_pos0, DType::BF16, k->data(), in.ld_k, v->data(), in.ld_v, lk,
                 k_pos0, scale, c.causal, in_place.acc.data(), in_place.m.data(), in_place.l.data());
      }
      EXPECT_TRUE(same_bits(wide, in_place)) << (backend ? "cpu" : "ref");
    }
  }
}

// The fused AVX-512 kernel computes each packed query row in a SIMD lane of
// its own, so a row's result is the same bits whichever other rows share its
// call, i.e. whatever the thread count (which sets the rows per task). Rows
// 0..149 folded at once, then in calls of 1, 7, 64 and 150 rows with 1 or 2
// threads. (Not so on the portable path: OpenBLAS's sgemm sums differently for
// different row counts.)
TEST(Attention, Avx512RowsGiveTheSameBitsInAnyGrouping) {
  if (!cpu::attention_avx512_available()) GTEST_SKIP() << "this CPU has no AVX-512F";
  const test::CpuAttentionPathGuard path(cpu::CpuAttentionPath::Avx512);
  const AttentionShape s{8, 2, 32};
  const int64_t L = 150;
  const float scale = 1.f / std::sqrt(32.f);
  const Inputs in = make_attention_inputs(s, L, L, 1, 5);
  auto fold_rows = [&](int64_t per_call, int threads) {
    State st(s, L);
    cpu::attention_init(s, L, st.acc.data(), st.m.data(), st.l.data());
    const int before = omp_get_max_threads();
    omp_set_num_threads(threads);
    for (int64_t i0 = 0; i0 < L; i0 += per_call) {
      const int64_t n = std::min(per_call, L - i0), H = s.q_heads;
      cpu::attention_block(s, in.q.data() + i0 * in.ld_q, in.ld_q, n, i0, in.k.data(), in.ld_k, in.v.data(), in.ld_v,
                           L, 0, scale, true, st.acc.data() + i0 * H * s.head_dim, st.m.data() + i0 * H,
                           st.l.data() + i0 * H);
    }
    omp_set_num_threads(before);
    return st;
  };
  const State all = fold_rows(L, 1);
  EXPECT_TRUE(test::all_close(ref_finalize(s, L, all), naive_attention(in, 0, 0, scale, true), kOutAtol, 0));
  for (const auto& [per_call, threads] : {std::pair{int64_t{1}, 1}, {7, 2}, {64, 2}, {L, 2}}) {
    const State part = fold_rows(per_call, threads);
    EXPECT_EQ(std::memcmp(part.acc.data(), all.acc.data(), all.acc.size() * 4), 0) << per_call << " rows per call";
    EXPECT_EQ(std::memcmp(part.m.data(), all.m.data(), all.m.size() * 4), 0) << per_call << " rows per call";
    EXPECT_EQ(std::memcmp(part.l.data(), all.l.data(), all.l.size() * 4), 0) << per_call << " rows per call";
  }
}

TEST(Attention, CpuRejectsHeadsNotAMultipleOfKvHeads) {
  const AttentionShape s{5, 2, 4};
  std::vector<float> q(20), k(8), v(8), acc(20), m(5), l(5);
  EXPECT_THROW(cpu::attention_block(s, q.data(), 20, 1, 0, k.data(), 8, v.data(), 8, 1, 0, 1.f,
                                    true, acc.data(), m.data(), l.data()),
               std::invalid_argument);
}

// Varlen's host forms split the rows into sequences by their ids: ids that go
// back (or below 0) are not a packing, and the sentence names the row.
TEST(Attention, VarlenRejectsDecreasingOrNegativeSequenceIds) {
  const AttentionShape s{2, 1, 4};
  std::vector<float> q(3 * 8), k(3 * 4), v(3 * 4), acc(3 * 8), m(6), l(6);
  for (const std::vector<int32_t>& seq : {std::vector<int32_t>{0, 2, 1}, std::vector<int32_t>{-1, 0, 0}}) {
    for (auto* f : {&ref::attention_varlen, &cpu::attention_varlen}) {
      try {
        f(s, q.data(), 8, k.data(), 4, v.data(), 4, 3, seq.data(), 1.f, true, acc.data(), m.data(), l.data());
        ADD_FAILURE() << "no exception";
      } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("attention_varlen: seq_idx must be non-negative and non-decreasing (row"),
                  std::string::npos)
            << e.what();
      }
    }
  }
}

}  // namespace
}  // namespace ringscan::kernels
