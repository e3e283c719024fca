// Inputs and checks for the block-wise attention kernel tests (every backend
// against the plain-loop reference of kernels/reference/attention.cpp and a
// naive whole-softmax definition).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "attention.h"
#include "kernels/kernel_test_util.h"

namespace ringscan::test {

struct AttentionInputs {
  kernels::AttentionShape s;
  int64_t lq, lk, ld_q, ld_k, ld_v;
  std::vector<float> q, k, v;
};

// Row strides wider than the heads by pad, 2 pad, 3 pad (pad 0: contiguous);
// q and k in [-2, 2], v in [-1, 1], from seed, seed + 1, seed + 2.
inline AttentionInputs make_attention_inputs(kernels::AttentionShape s, int64_t lq, int64_t lk,
                                             int64_t pad, uint64_t seed) {
  AttentionInputs in{s,
                     lq,
                     lk,
                     s.q_heads * s.head_dim + pad,
                     s.kv_heads * s.head_dim + 2 * pad,
                     s.kv_heads * s.head_dim + 3 * pad,
                     {},
                     {},
                     {}};
  in.q = random_floats(lq * in.ld_q, seed, -2.f, 2.f);
  in.k = random_floats(lk * in.ld_k, seed + 1, -2.f, 2.f);
  in.v = random_floats(lk * in.ld_v, seed + 2, -1.f, 1.f);
  return in;
}

// The same inputs rounded to bf16 values: what the tensor-core kernels
// multiply, so that the reference sees the same products.
inline AttentionInputs bf16_rounded(AttentionInputs in) {
  for (auto* x : {&in.q, &in.k, &in.v})
    for (float& f : *x) f = bf16_to_f32(f32_to_bf16(f));
  return in;
}

// One block against the reference: lq queries at positions q_pos0... meet lk
// keys at k_pos0..., rows padded as make_attention_inputs(..., pad, ...) does.
struct AttentionBlockCase {
  kernels::AttentionShape s;
  int64_t lq, lk, pad, q_pos0, k_pos0;
  bool causal;
};

inline std::string describe(const AttentionBlockCase& c) {
  std::ostringstream os;
  os << "heads " << c.s.q_heads << "/" << c.s.kv_heads << " dim " << c.s.head_dim << " lq "
     << c.lq << " lk " << c.lk << " pad " << c.pad << " q_pos0 " << c.q_pos0 << " k_pos0 "
     << c.k_pos0 << " causal " << c.causal;
  return os.str();
}

// The cases of every attention_block backend (ref vs cpu, cuda fp32 and
// tensor-core kernels: one list, so they cannot drift apart): head dims
// between template widths, GQA 1..8, causal diagonals, keys in the future,
// rows that see nothing, several row and key tiles, and decode shapes whose
// keys split over CTAs.
inline std::vector<AttentionBlockCase> attention_block_cases() {
  return {
    {{4, 2, 16}, 7, 9, 3, 20, 18, true},         // diagonal block: some keys in the future
    {{4, 2, 16}, 7, 9, 0, 20, 18, false},
    {{5, 1, 8}, 60, 33, 1, 100, 90, true},       // 5 heads per KV head
    {{8, 1, 16}, 150, 40, 1, 300, 280, true},    // 8 per KV head: 3 row tiles of <= 64 rows
    {{40, 8, 128}, 1, 700, 0, 699, 0, true},     // decode: one query, all keys visible
    {{1, 1, 1}, 1, 1, 0, 0, 0, true},
    {{2, 2, 16}, 1, 1, 0, 0, 0, true},           // GQA 1, one query, one key
    {{4, 2, 24}, 7, 33, 3, 40, 20, true},        // GQA 2, odd-ish dim, diagonal block
    {{4, 2, 24}, 7, 33, 3, 40, 20, false},       // same, non-causal
    {{8, 2, 64}, 64, 300, 1, 500, 500, true},    // GQA 4, equal positions
    {{4, 1, 128}, 200, 300, 2, 1000, 900, true}, // GQA 4, 13 row tiles, some keys in the future
    {{8, 8, 16}, 200, 33, 0, 300, 0, true},      // GQA 1, all keys visible
    {{5, 1, 24}, 7, 300, 5, 0, 0, false},        // 5 heads per KV head, non-causal
    {{3, 3, 7}, 13, 600, 2, 700, 200, true},     // odd head_dim
    {{2, 1, 256}, 33, 100, 4, 50, 0, true},      // the largest head_dim
    {{2, 2, 200}, 9, 70, 1, 60, 0, false},       // head_dim between the template widths
    {{40, 8, 128}, 1, 3000, 0, 2999, 0, true},   // decode: keys split over CTAs
    {{40, 8, 128}, 1, 300, 0, 299, 0, true},     // short decode
    {{40, 8, 128}, 70, 70, 5, 1000, 1000, true},
    {{4, 2, 16}, 7, 2000, 1, 2500, 0, true},     // split, all keys visible
    {{2, 1, 64}, 50, 1500, 0, 700, 0, true},     // split, the later splits see nothing
    {{6, 2, 32}, 20, 33, 0, 0, 100, true},       // every key in the future: nothing changes
    {{6, 2, 32}, 20, 30, 0, 90, 100, true},      // the first rows see nothing, later rows some
    {{6, 2, 32}, 20, 2000, 0, 90, 100, true},    // same with a split
    // ringscan ask's prefix attention (demo shape): 160 questions' queries over a
    // shard of 600 prefix keys, all visible: 640 packed rows per KV head (2 row tiles of
    // the portable kernel; the AVX-512 one takes up to 1 024 a task, and splits the
    // 8-heads-per-KV-head case's 1 200).
    {{8, 2, 32}, 160, 600, 0, 5000, 0, false},
  };
}

// Forces the cpu attention kernel (kernels/attention.h, CpuAttentionPath) for
// its lifetime, then gives the choice back to Auto.
class CpuAttentionPathGuard {
 public:
  explicit CpuAttentionPathGuard(kernels::cpu::CpuAttentionPath path) { kernels::cpu::set_attention_path(path); }
  ~CpuAttentionPathGuard() { kernels::cpu::set_attention_path(kernels::cpu::CpuAttentionPath::Auto); }
  CpuAttentionPathGuard(const CpuAttentionPathGuard&) = delete;
  CpuAttentionPathGuard& operator=(const CpuAttentionPathGuard&) = delete;
};

// An online-softmax state on the host: acc [lq * q_heads, head_dim], running
// max m and sum l [lq * q_heads]. Zero-filled, not initialised: a test calls
// the attention_init it means to exercise.
struct AttentionState {
  std::vector<float> acc, m, l;
  AttentionState(const kernels::AttentionShape& s, int64_t lq)
      : acc(lq * s.q_heads * s.head_dim), m(lq * s.q_heads), l(lq * s.q_heads) {}
};

// Keys [j0, j1) of `in` (positions k_pos0 + j0 ...) folded into a host state
// by the reference, for the queries of `q_from` (same lq and ld_q as in).
inline void ref_fold(const AttentionInputs& in, const AttentionInputs& q_from, int64_t q_pos0, int64_t j0,
                     int64_t j1, int64_t k_pos0, float scale, bool causal, AttentionState& st) {
  kernels::ref::attention_block(in.s, q_from.q.data(), q_from.ld_q, in.lq, q_pos0, in.k.data() + j0 * in.ld_k,
                                in.ld_k, in.v.data() + j0 * in.ld_v, in.ld_v, j1 - j0, k_pos0 + j0, scale, causal,
                                st.acc.data(), st.m.data(), st.l.data());
}

// The normalised outputs of a state by the reference, [lq, q_heads * head_dim].
inline std::vector<float> ref_finalize(const kernels::AttentionShape& s, int64_t lq,
                                       const AttentionState& st) {
  std::vector<float> out(lq * s.q_heads * s.head_dim);
  kernels::ref::attention_finalize(s, lq, st.acc.data(), st.l.data(), out.data(),
                                   s.q_heads * s.head_dim);
  return out;
}

// Naive causal attention in double over all keys at once: the definition,
// written independently of the online softmax. Rows with no visible key give 0.
inline std::vector<float> naive_attention(const AttentionInputs& in, int64_t q_pos0,
                                          int64_t k_pos0, float scale, bool causal) {
  const kernels::AttentionShape& s = in.s;
  const int64_t D = s.head_dim, G = s.q_heads / s.kv_heads;
  std::vector<float> out(in.lq * s.q_heads * D, 0.f);
  for (int64_t i = 0; i < in.lq; ++i)
    for (int64_t h = 0; h < s.q_heads; ++h) {
      std::vector<double> w(in.lk, 0.0);
      double mx = -INFINITY;
      for (int64_t j = 0; j < in.lk; ++j) {
        if (causal && k_pos0 + j > q_pos0 + i) continue;
        double dot = 0;
        for (int64_t d = 0; d < D; ++d)
          dot += double(in.q[i * in.ld_q + h * D + d]) * in.k[j * in.ld_k + (h / G) * D + d];
        w[j] = dot * scale;
        mx = std::max(mx, w[j]);
      }
      if (mx == -INFINITY) continue;
      double sum = 0;
      for (int64_t j = 0; j < in.lk; ++j) {
        const bool seen = !causal || k_pos0 + j <= q_pos0 + i;
        w[j] = seen ? std::exp(w[j] - mx) : 0.0;
        sum += w[j];
      }
      for (int64_t d = 0; d < D; ++d) {
        double o = 0;
        for (int64_t j = 0; j < in.lk; ++j) o += w[j] * in.v[j * in.ld_v + (h / G) * D + d];
        out[(i * s.q_heads + h) * D + d] = static_cast<float>(o / sum);
      }
    }
  return out;
}

// A state that no key reached: m = -inf and l = 0 in every row, acc all 0.
inline void expect_attention_state_empty(const AttentionState& st) {
  for (size_t r = 0; r < st.m.size(); ++r) {
    EXPECT_EQ(st.m[r], -INFINITY) << "row " << r;
    EXPECT_EQ(st.l[r], 0.f) << "row " << r;
  }
  for (float x : st.acc) EXPECT_EQ(x, 0.f);
}

// A backend's tolerances for expect_attention_states_close.
struct AttentionTolerances {
  double out_atol;  // finalised outputs, absolute
  double max_atol;  // the running max (a score), absolute
  double sum_rtol;  // l compared at the expected max (a sum of weights), relative
};

// Compares two states: max, then the sum at the same max, then the outputs.
// A row the expected state saw no key for must be exactly m = -inf, l = 0.
inline void expect_attention_states_close(const kernels::AttentionShape& s, int64_t lq,
                                          const AttentionState& got, const AttentionState& expect,
                                          const AttentionTolerances& tol) {
  for (size_t r = 0; r < got.m.size(); ++r) {
    if (expect.m[r] == -INFINITY) {
      ASSERT_EQ(got.m[r], -INFINITY) << "row " << r;
      ASSERT_EQ(got.l[r], 0.f) << "row " << r;
      continue;
    }
    ASSERT_NEAR(got.m[r], expect.m[r], tol.max_atol) << "row " << r;
    const double l_at_expect_max = got.l[r] * std::exp(double(got.m[r]) - expect.m[r]);
    ASSERT_NEAR(l_at_expect_max, expect.l[r], tol.sum_rtol * expect.l[r]) << "row " << r;
  }
  EXPECT_TRUE(all_close(ref_finalize(s, lq, got), ref_finalize(s, lq, expect), tol.out_atol, 0));
}

}  // namespace ringscan::test
