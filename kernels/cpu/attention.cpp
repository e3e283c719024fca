// Block-wise GQA attention with the online softmax. Work is split into tasks of
// (KV head, tile of query rows); a task packs the query rows of all heads
// sharing that KV head, so each key/value tile is read once per group. Two
// implementations of a task: on CPUs with AVX-512 a fused kernel with the
// packed rows in SIMD lanes (cpu/attention_avx512.h), elsewhere (and for
// tasks of fewer than 16 packed rows, e.g. a one-question decode step) the
// portable one below: scores are one sgemm per key tile, probabilities
// times V another.
#include "attention.h"
#include "sequence_runs.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>

#include "cpu/attention_avx512.h"
#include "cpu/vec_exp.h"
#include "cpu/widen_bf16.h"
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace ringscan::kernels::cpu {
namespace {


// Tile sizes, from bench/kernels (40/8 heads x 128, one thread): packed rows
// 128 -> 512 took a 512 x 4096 block from 690 to 385 ms, as OpenBLAS packs each
// K/V tile once per task; key tiles of 256..1024 made little difference.
constexpr int64_t kPackedRows = 512;  // query rows x group heads per task (at most)
constexpr int64_t kKeyTile = 512;     // keys per score tile: 512 x 512 fp32 = 1 MB
// Fewer packed rows than this fill too few of the AVX-512 kernel's 32 lanes.
constexpr int64_t kMinAvx512Rows = 16;

std::atomic<CpuAttentionPath> g_path{CpuAttentionPath::Auto};

}  // namespace

bool attention_avx512_available() { return avx512::available(); }

void set_attention_path(CpuAttentionPath path) {
  if (path == CpuAttentionPath::Avx512 && !avx512::available())
    throw std::runtime_error("cpu::set_attention_path: this CPU has no AVX-512F");
  g_path = path;
}

void attention_init(const AttentionShape& s, int64_t lq, float* acc, float* m, float* l) {
  const int64_t rows = lq * s.q_heads;
  std::fill(m, m + rows, -INFINITY);
  std::fill(l, l + rows, 0.f);
  std::fill(acc, acc + rows * s.head_dim, 0.f);
}

void attention_block(const AttentionShape& s, const float* q, int64_t ld_q, int64_t lq,
                     int64_t q_pos0, const float* k, int64_t ld_k, const float* v, int64_t ld_v,
                     int64_t lk, int64_t k_pos0, float scale, bool causal, float* acc, float* m,
                     float* l) {
  attention_block_kv(s, q, ld_q, lq, q_pos0, DType::F32, k, ld_k, v, ld_v, lk, k_pos0, scale, causal, acc, m, l);
}

// K/V of bf16: each task widens its KV head's columns of a key tile into a
// buffer of its own (nk x head_dim, packed) before the two sgemm; fp32 K/V go
// to sgemm where they lie, as before. The products and tiles are the same
// either way, so a bf16 block gives the bits of its widened fp32 copy.
void attention_block_kv(const AttentionShape& s, const float* q, int64_t ld_q, int64_t lq, int64_t q_pos0,
                        DType kv_dtype, const void* k_in, int64_t ld_k, const void* v_in, int64_t ld_v, int64_t lk,
                        int64_t k_pos0, float scale, bool causal, float* acc, float* m, float* l) {
  if (s.kv_heads <= 0 || s.q_heads % s.kv_heads != 0)
    throw std::invalid_argument("attention_block: q_heads must be a multiple of kv_heads");
  if (kv_dtype != DType::F32 && kv_dtype != DType::BF16)
    throw std::invalid_argument(std::string("attention_block_kv: K/V must be F32 or BF16, not ") +
                                dtype_name(kv_dtype));
  const bool wide = kv_dtype == DType::F32;
  if (lq <= 0 || lk <= 0) return;
  const int64_t D = s.head_dim, H = s.q_heads, G = H / s.kv_heads;
  const CpuAttentionPath path = g_path;
  const bool avx512_here = path != CpuAttentionPath::Portable && avx512::available() && lk <= INT32_MAX;
  // Query rows per task: as many as the kernel's packed-row limit allows, but
  // enough tiles that every thread has a task.
  const int64_t min_tiles = (omp_get_max_threads() + s.kv_heads - 1) / s.kv_heads;
  const int64_t max_packed = avx512_here ? avx512::kMaxPackedRows : kPackedRows;
  const int64_t T = std::clamp<int64_t>((lq + min_tiles - 1) / min_tiles, 1, std::max<int64_t>(1, max_packed / G));
  const int64_t n_tiles = (lq + T - 1) / T;
  // Keys visible to query row i form a prefix of the block: [0, visible(i)).
  auto visible = [&](int64_t i) -> int64_t {
    return causal ? std::clamp<int64_t>(q_pos0 + i - k_pos0 + 1, 0, lk) : lk;
  };

  // Tasks this small have T set by lq, not by either kernel's row limit.
  const bool fused = avx512_here && (path == CpuAttentionPath::Avx512 || T * G >= kMinAvx512Rows);

#pragma omp parallel if (lq * lk * H * D > (int64_t{1} << 16))
  {
    // The fused path's scratch, or the portable path's buffers.
    std::vector<float> fused_f(fused ? avx512::scratch_floats(T, G, D) : 0);
    std::vector<int32_t> fused_i(fused ? avx512::scratch_ints(T, G) : 0);
    std::vector<int64_t> fused_visible(fused ? T : 0);
    const int64_t portable_rows = fused ? 0 : T * G;
    std::vector<float> qp(static_cast<size_t>(portable_rows * D));         // packed queries
    std::vector<float> sc(static_cast<size_t>(portable_rows * kKeyTile));  // scores, then weights
    std::vector<float> pv(static_cast<size_t>(portable_rows * D));         // weights x V
    std::vector<float> rescale(static_cast<size_t>(portable_rows));
    std::vector<float> kt(wide || fused ? 0 : static_cast<size_t>(kKeyTile * D)), vt(kt.size());  // widened bf16 tiles
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < s.kv_heads * n_tiles; ++task) {
      const int64_t g = task % s.kv_heads, i0 = (task / s.kv_heads) * T;
      const int64_t nt = std::min(T, lq - i0), M = nt * G;
      const int64_t keys = visible(i0 + nt - 1);  // the tile's last row sees the most
      if (keys == 0) continue;
      if (fused) {
        for (int64_t i = 0; i < nt; ++i) fused_visible[i] = visible(i0 + i);
        const size_t elem = wide ? sizeof(float) : sizeof(uint16_t);
        const avx512::RowsTask t{.head_dim = D,
                                 .group = G,
                                 .q_heads = H,
                                 .rows = nt,
                                 .q = q + i0 * ld_q + g * G * D,
                                 .ld_q = ld_q,
                                 .visible = fused_visible.data(),
                                 .bf16 = !wide,
                                 .k = static_cast<const char*>(k_in) + g * D * elem,
                                 .ld_k = ld_k,
                                 .v = static_cast<const char*>(v_in) + g * D * elem,
                                 .ld_v = ld_v,
                                 .scale = scale,
                                 .acc = acc + (i0 * H + g * G) * D,
                                 .m = m + i0 * H + g * G,
                                 .l = l + i0 * H + g * G};
        avx512::attention_rows(t, fused_f.data(), fused_i.data());
        continue;
      }
      // Packed row r = i * G + hh is query row i0 + i of head g * G + hh.
      for (int64_t i = 0; i < nt; ++i)
        std::memcpy(&qp[i * G * D], q + (i0 + i) * ld_q + g * G * D, G * D * sizeof(float));

      for (int64_t j0 = 0; j0 < keys; j0 += kKeyTile) {
        const int64_t nk = std::min(kKeyTile, keys - j0);
        const float *kj = nullptr, *vj = nullptr;  // this tile's K and V columns of KV head g
        int64_t ldk = ld_k, ldv = ld_v;
        if (wide) {
          kj = static_cast<const float*>(k_in) + j0 * ld_k + g * D;
          vj = static_cast<const float*>(v_in) + j0 * ld_v + g * D;
        } else {
          widen_bf16(static_cast<const uint16_t*>(k_in) + j0 * ld_k + g * D, ld_k, nk, D, kt.data());
          widen_bf16(static_cast<const uint16_t*>(v_in) + j0 * ld_v + g * D, ld_v, nk, D, vt.data());
          kj = kt.data(), vj = vt.data(), ldk = ldv = D;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, nk, D, scale, qp.data(), D, kj, ldk, 0.f,
                    sc.data(), nk);
        for (int64_t r = 0; r < M; ++r) {
          const int64_t i = r / G, state = (i0 + i) * H + g * G + r % G;
          float* p = &sc[r * nk];
          const int64_t nv = std::clamp<int64_t>(visible(i0 + i) - j0, 0, nk);
          if (nv == 0) {  // nothing visible here: weights 0, state unchanged
            std::fill(p, p + nk, 0.f);
            rescale[r] = 1.f;
            continue;
          }
          float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
          for (int64_t j = 0; j < nv; ++j) mx = mx > p[j] ? mx : p[j];
          const float m_old = m[state], m_new = std::max(m_old, mx);
          float sum = 0.f;
#pragma omp simd reduction(+ : sum)
          for (int64_t j = 0; j < nv; ++j) {
            p[j] = exp_vec(p[j] - m_new);
            sum += p[j];
          }
          std::fill(p + nv, p + nk, 0.f);
          const float corr = std::exp(m_old - m_new);  // 0 when m_old == -inf
          rescale[r] = corr;
          l[state] = l[state] * corr + sum;
          m[state] = m_new;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, D, nk, 1.f, sc.data(), nk, vj, ldv, 0.f,
                    pv.data(), D);
        for (int64_t r = 0; r < M; ++r) {
          float* a = acc + ((i0 + r / G) * H + g * G + r % G) * D;
          const float c = rescale[r];
          const float* o = &pv[r * D];
#pragma omp simd
          for (int64_t d = 0; d < D; ++d) a[d] = a[d] * c + o[d];
        }
      }
    }
  }
}

void attention_merge(const AttentionShape& s, int64_t lq, const float* acc2, const float* m2,
                     const float* l2, float* acc, float* m, float* l) {
  const int64_t rows = lq * s.q_heads, D = s.head_dim;
#pragma omp parallel for schedule(static) if (rows * D > (int64_t{1} << 16))
  for (int64_t r = 0; r < rows; ++r) {
    const float m_new = std::max(m[r], m2[r]);
    if (m_new == -INFINITY) continue;  // neither side has seen a key
    const float w1 = std::exp(m[r] - m_new), w2 = std::exp(m2[r] - m_new);
    l[r] = l[r] * w1 + l2[r] * w2;
    m[r] = m_new;
    float* a = acc + r * D;
    const float* b = acc2 + r * D;
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) a[d] = a[d] * w1 + b[d] * w2;
  }
}

void attention_finalize(const AttentionShape& s, int64_t lq, const float* acc, const float* l,
                        float* out, int64_t ld_out) {
  const int64_t H = s.q_heads, D = s.head_dim;
#pragma omp parallel for schedule(static) if (lq * H * D > (int64_t{1} << 16))
  for (int64_t i = 0; i < lq; ++i) {
    for (int64_t h = 0; h < H; ++h) {
      const float lr = l[i * H + h];
      const float inv = lr > 0.f ? 1.f / lr : 0.f;  // no visible key: zeros
      const float* a = acc + (i * H + h) * D;
      float* o = out + i * ld_out + h * D;
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) o[d] = a[d] * inv;
    }
  }
}

// Each sequence alone: its rows are its own queries and keys (positions restart).
void attention_varlen(const AttentionShape& s, const float* q, int64_t ld_q, const float* k, int64_t ld_k,
                      const float* v, int64_t ld_v, int64_t rows, const int32_t* seq_idx, float scale, bool causal,
                      float* acc, float* m, float* l) {
  for_each_sequence(seq_idx, rows, "cpu::attention_varlen", [&](int64_t r, int64_t n) {
    attention_block(s, q + r * ld_q, ld_q, n, 0, k + r * ld_k, ld_k, v + r * ld_v, ld_v, n, 0, scale, causal,
                    acc + r * s.q_heads * s.head_dim, m + r * s.q_heads, l + r * s.q_heads);
  });
}

}  // namespace ringscan::kernels::cpu
