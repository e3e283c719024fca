// The AVX-512 path of cpu::attention_block_kv: see attention_avx512.h for the
// layout. Only functions marked RINGSCAN_AVX512 use AVX-512 instructions (the
// attribute, not a file-wide flag, so that no inline function of a shared
// header is compiled for AVX-512 and picked by the linker for every caller);
// attention.cpp calls attention_rows only when available() says the CPU has it.
#include "cpu/attention_avx512.h"

#include <stdexcept>

#include "cpu/vec_exp.h"
#include "cpu/widen_bf16.h"

#if defined(__x86_64__)
#include <immintrin.h>

// GCC 12's AVX-512 intrinsics (max, min, shifts) read an `undefined` vector
// that -Wuninitialized reports at every use (GCC bug 105593, fixed in 13).
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <algorithm>
#include <cmath>

#define RINGSCAN_AVX512 __attribute__((target("avx512f,fma")))
// The register-blocked loops stay functions of their own: inlined into their
// caller, whether GCC 12 keeps all their accumulators in registers depends on
// the caller's other live values (an extra vector there once spilled the query
// vectors to the stack: 1.4x slower); called, they always get the registers.
#define RINGSCAN_AVX512_BLOCK __attribute__((target("avx512f,fma"), noinline))

namespace ringscan::kernels::cpu::avx512 {

bool available() {
  static const bool yes = __builtin_cpu_supports("avx512f");  // libgcc checks the OS saves ZMM state too
  return yes;
}

size_t scratch_floats(int64_t max_rows, int64_t group, int64_t head_dim) {
  const int64_t blocks = (max_rows * group + kRowBlock - 1) / kRowBlock;
  // queries and accumulators (transposed), m and l, one score tile, one widened K and V tile
  return static_cast<size_t>(2 * blocks * head_dim * kRowBlock + 2 * blocks * kRowBlock + kKeyBlock * kRowBlock +
                             2 * kKeyBlock * head_dim);
}

size_t scratch_ints(int64_t max_rows, int64_t group) {
  return static_cast<size_t>((max_rows * group + kRowBlock - 1) / kRowBlock * kRowBlock);
}

namespace {

// exp(x) for x <= 0, 16 lanes: what the online softmax takes (score - max,
// old max - new max). vec_exp.h's exp_vec's range reduction and polynomial,
// here in fused multiply-adds (so within about an ulp of it, not always its
// bits; its constants: exp_const), and 2^n by vscalefps (exact, as exp_vec's
// exponent bits); 0 below kMin = -87 (so exp(-inf) = 0), NaN kept.
RINGSCAN_AVX512 inline __m512 exp16_nonpositive(__m512 x) {
  using namespace exp_const;
  const __m512 round = _mm512_set1_ps(kRound), lo = _mm512_set1_ps(kMin);
  // max returns its second operand for a NaN: NaN becomes a finite value here.
  const __m512 xc = _mm512_max_ps(x, lo);
  const __m512 n = _mm512_sub_ps(_mm512_fmadd_ps(xc, _mm512_set1_ps(kLog2e), round), round);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), xc);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kP0);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP5));
  p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
  __m512 y = _mm512_scalef_ps(p, n);
  y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ), _mm512_setzero_ps());
  return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

// The register block both products use: NC x RV accumulators (NC columns c,
// RV vectors of rows) take rank-1 updates over i < n in order,
//   acc[c][lane] += a[i][lane] * b(i, c),
// each b(i, c) broadcast once to meet RV vectors of a (kRowBlock floats a row).
//  - scores (kWeightedValues false): a = the block's queries [d][lane], i = the
//    head dim, b(i, c) = key c's element i = b[c * ld_b + i]; acc starts at 0;
//  - weighted values (true): a = the weights [key][lane], i = the key, b(i, c) =
//    dim c of value row i = b[i * ld_b + c]; acc starts at out * alpha (the
//    online softmax's rescaling).
// out[c][lane] (kRowBlock floats a row) receives acc.
template <int RV, int NC, bool kWeightedValues>
RINGSCAN_AVX512_BLOCK void fma_block(const float* a, int64_t n, const float* b, int64_t ld_b, float* out,
                                     const __m512* alpha) {
  __m512 acc[NC][RV];
  #pragma GCC unroll 16
  for (int c = 0; c < NC; ++c)
    #pragma GCC unroll 16
    for (int r = 0; r < RV; ++r)
      acc[c][r] = kWeightedValues ? _mm512_mul_ps(_mm512_loadu_ps(out + c * kRowBlock + 16 * r), alpha[r])
                                  : _mm512_setzero_ps();
  for (int64_t i = 0; i < n; ++i) {
    __m512 x[RV];
    #pragma GCC unroll 16
    for (int r = 0; r < RV; ++r) x[r] = _mm512_loadu_ps(a + i * kRowBlock + 16 * r);
    #pragma GCC unroll 16
    for (int c = 0; c < NC; ++c) {
      const __m512 y = _mm512_set1_ps(kWeightedValues ? b[i * ld_b + c] : b[c * ld_b + i]);
      #pragma GCC unroll 16
      for (int r = 0; r < RV; ++r) acc[c][r] = _mm512_fmadd_ps(y, x[r], acc[c][r]);
    }
  }
  #pragma GCC unroll 16
  for (int c = 0; c < NC; ++c)
    #pragma GCC unroll 16
    for (int r = 0; r < RV; ++r) _mm512_storeu_ps(out + c * kRowBlock + 16 * r, acc[c][r]);
}

// One row block (RV vectors of rows) folds keys [0, n) of the tile at key
// index j0: keys [0, all) are seen by every lane, the rest by the lanes whose
// visible count exceeds their index.
template <int RV>
RINGSCAN_AVX512 void fold_tile(const float* qt, float* ot, float* mt, float* lt, const int32_t* vis, int64_t D,
                               const float* k, int64_t ld_k, const float* v, int64_t ld_v, int64_t n, int64_t all,
                               int64_t j0, float* sc) {
  int64_t c = 0;
  // Scores: keys c.. of the tile, 12 at a time.
  for (; c + 12 <= n; c += 12) fma_block<RV, 12, false>(qt, D, k + c * ld_k, ld_k, sc + c * kRowBlock, nullptr);
  for (; c + 4 <= n; c += 4) fma_block<RV, 4, false>(qt, D, k + c * ld_k, ld_k, sc + c * kRowBlock, nullptr);
  for (; c < n; ++c) fma_block<RV, 1, false>(qt, D, k + c * ld_k, ld_k, sc + c * kRowBlock, nullptr);

  const __m512 neg_inf = _mm512_set1_ps(-INFINITY);
  #pragma GCC unroll 16
  for (int r = 0; r < RV; ++r) {
    const __m512i seen = _mm512_loadu_si512(vis + 16 * r);
    for (int64_t j = all; j < n; ++j) {
      float* s = sc + j * kRowBlock + 16 * r;
      const __mmask16 in = _mm512_cmpgt_epi32_mask(seen, _mm512_set1_epi32(static_cast<int32_t>(j0 + j)));
      _mm512_storeu_ps(s, _mm512_mask_blend_ps(in, neg_inf, _mm512_loadu_ps(s)));
    }
  }

  // Online softmax, lane-wise: a lane that has seen no key yet (m = -inf)
  // subtracts 0 instead, so its weights are exp(-inf) = 0 and nothing changes.
  __m512 alpha[RV], m_sub[RV], sum[RV];
  #pragma GCC unroll 16
  for (int r = 0; r < RV; ++r) {
    __m512 mx = neg_inf;
    for (int64_t j = 0; j < n; ++j) mx = _mm512_max_ps(mx, _mm512_loadu_ps(sc + j * kRowBlock + 16 * r));
    const __m512 m_old = _mm512_loadu_ps(mt + 16 * r), m_new = _mm512_max_ps(m_old, mx);
    m_sub[r] = _mm512_mask_mov_ps(m_new, _mm512_cmp_ps_mask(m_new, neg_inf, _CMP_EQ_OQ), _mm512_setzero_ps());
    alpha[r] = exp16_nonpositive(_mm512_sub_ps(m_old, m_sub[r]));  // 0 when m_old == -inf
    sum[r] = _mm512_setzero_ps();
    _mm512_storeu_ps(mt + 16 * r, m_new);
  }
  for (int64_t j = 0; j < n; ++j) {
    #pragma GCC unroll 16
    for (int r = 0; r < RV; ++r) {
      float* s = sc + j * kRowBlock + 16 * r;
      const __m512 p = exp16_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(s), m_sub[r]));
      _mm512_storeu_ps(s, p);
      sum[r] = _mm512_add_ps(sum[r], p);
    }
  }
  #pragma GCC unroll 16
  for (int r = 0; r < RV; ++r)
    _mm512_storeu_ps(lt + 16 * r, _mm512_fmadd_ps(_mm512_loadu_ps(lt + 16 * r), alpha[r], sum[r]));

  // Weights x V: head dims d.., 12 at a time (D = 32: 12 + 12 + 8).
  int64_t d = 0;
  for (; d + 12 <= D; d += 12) fma_block<RV, 12, true>(sc, n, v + d, ld_v, ot + d * kRowBlock, alpha);
  for (; d + 8 <= D; d += 8) fma_block<RV, 8, true>(sc, n, v + d, ld_v, ot + d * kRowBlock, alpha);
  for (; d + 4 <= D; d += 4) fma_block<RV, 4, true>(sc, n, v + d, ld_v, ot + d * kRowBlock, alpha);
  for (; d < D; ++d) fma_block<RV, 1, true>(sc, n, v + d, ld_v, ot + d * kRowBlock, alpha);
}

RINGSCAN_AVX512 void rows_avx512(const RowsTask& t, float* f, int32_t* vis) {
  const int64_t D = t.head_dim, G = t.group, H = t.q_heads, R = t.rows * G;
  const int64_t blocks = (R + kRowBlock - 1) / kRowBlock, lanes = blocks * kRowBlock;
  float* qt = f;                        // [block][d][lane]: scaled queries
  float* ot = qt + blocks * D * kRowBlock;  // [block][d][lane]: acc
  float* mt = ot + blocks * D * kRowBlock;  // [lane]
  float* lt = mt + lanes;
  float* sc = lt + lanes;  // [key][lane]: a score tile, then its weights
  float* kw = sc + kKeyBlock * kRowBlock;
  float* vw = kw + kKeyBlock * D;

  // Lanes past the task's rows (the last block's) get zero queries and an
  // empty state; what they compute is never written back.
  for (int64_t r = 0; r < lanes; ++r) {
    float* qd = qt + (r / kRowBlock) * D * kRowBlock + r % kRowBlock;
    float* od = ot + (r / kRowBlock) * D * kRowBlock + r % kRowBlock;
    if (r < R) {
      const int64_t i = r / G, hh = r % G, state = i * H + hh;
      const float* qr = t.q + i * t.ld_q + hh * D;
      const float* ar = t.acc + state * D;
      for (int64_t d = 0; d < D; ++d) qd[d * kRowBlock] = qr[d] * t.scale, od[d * kRowBlock] = ar[d];
      mt[r] = t.m[state], lt[r] = t.l[state], vis[r] = static_cast<int32_t>(t.visible[i]);
    } else {
      for (int64_t d = 0; d < D; ++d) qd[d * kRowBlock] = 0.f, od[d * kRowBlock] = 0.f;
      mt[r] = -INFINITY, lt[r] = 0.f, vis[r] = 0;
    }
  }

  const int64_t keys = t.visible[t.rows - 1];
  for (int64_t j0 = 0; j0 < keys; j0 += kKeyBlock) {
    const int64_t nk = std::min(kKeyBlock, keys - j0);
    const float *kj, *vj;
    int64_t ld_k = t.ld_k, ld_v = t.ld_v;
    if (t.bf16) {
      widen_bf16(static_cast<const uint16_t*>(t.k) + j0 * t.ld_k, t.ld_k, nk, D, kw);
      widen_bf16(static_cast<const uint16_t*>(t.v) + j0 * t.ld_v, t.ld_v, nk, D, vw);
      kj = kw, vj = vw, ld_k = ld_v = D;
    } else {
      kj = static_cast<const float*>(t.k) + j0 * t.ld_k;
      vj = static_cast<const float*>(t.v) + j0 * t.ld_v;
    }
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t r0 = b * kRowBlock, live = std::min(kRowBlock, R - r0);
      // Visible counts rise with the row, so the block's last live row sees the
      // most and its first the fewest (padding lanes do not count).
      const int64_t n = std::clamp<int64_t>(vis[r0 + live - 1] - j0, 0, nk);
      if (n == 0) continue;
      const int64_t all = std::clamp<int64_t>(vis[r0] - j0, 0, n);
      float* qb = qt + b * D * kRowBlock;
      float* ob = ot + b * D * kRowBlock;
      if (live > 16)
        fold_tile<2>(qb, ob, mt + r0, lt + r0, vis + r0, D, kj, ld_k, vj, ld_v, n, all, j0, sc);
      else
        fold_tile<1>(qb, ob, mt + r0, lt + r0, vis + r0, D, kj, ld_k, vj, ld_v, n, all, j0, sc);
    }
  }

  for (int64_t r = 0; r < R; ++r) {
    const int64_t state = (r / G) * H + r % G;
    const float* od = ot + (r / kRowBlock) * D * kRowBlock + r % kRowBlock;
    float* ar = t.acc + state * D;
    for (int64_t d = 0; d < D; ++d) ar[d] = od[d * kRowBlock];
    t.m[state] = mt[r], t.l[state] = lt[r];
  }
}

}  // namespace

void attention_rows(const RowsTask& t, float* scratch_f, int32_t* scratch_i) { rows_avx512(t, scratch_f, scratch_i); }

}  // namespace ringscan::kernels::cpu::avx512

#else  // not x86-64 (e.g. a Grace CPU): the portable kernel only

namespace ringscan::kernels::cpu::avx512 {
bool available() { return false; }
size_t scratch_floats(int64_t, int64_t, int64_t) { return 0; }
size_t scratch_ints(int64_t, int64_t) { return 0; }
void attention_rows(const RowsTask&, float*, int32_t*) {
  throw std::logic_error("cpu::avx512::attention_rows: not an x86-64 build");
}
}  // namespace ringscan::kernels::cpu::avx512

#endif
