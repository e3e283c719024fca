#include "attention.h"
#include "sequence_runs.h"

#include <cmath>
#include <stdexcept>
#include <vector>

namespace ringscan::kernels::ref {

void attention_init(const AttentionShape& s, int64_t lq, float* acc, float* m, float* l) {
  for (int64_t i = 0; i < lq * s.q_heads; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.f;
  }
  for (int64_t i = 0; i < lq * s.q_heads * s.head_dim; ++i) acc[i] = 0.f;
}

// One (query row, head) at a time: scores of the visible keys, then the online
// softmax update in double precision.
void attention_block(const AttentionShape& s, const float* q, int64_t ld_q, int64_t lq,
                     int64_t q_pos0, const float* k, int64_t ld_k, const float* v, int64_t ld_v,
                     int64_t lk, int64_t k_pos0, float scale, bool causal, float* acc, float* m,
                     float* l) {
  const int64_t D = s.head_dim, group = s.q_heads / s.kv_heads;
  std::vector<double> score(static_cast<size_t>(lk));
  for (int64_t i = 0; i < lq; ++i) {
    for (int64_t h = 0; h < s.q_heads; ++h) {
      const float* qi = q + i * ld_q + h * D;
      const int64_t kvh = h / group;
      double block_max = -INFINITY;
      for (int64_t j = 0; j < lk; ++j) {
        if (causal && k_pos0 + j > q_pos0 + i) {
          score[j] = -INFINITY;
          continue;
        }
        const float* kj = k + j * ld_k + kvh * D;
        double dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += static_cast<double>(qi[d]) * kj[d];
        score[j] = dot * scale;
        block_max = std::max(block_max, score[j]);
      }
      if (block_max == -INFINITY) continue;  // no visible key in this block

      float& mi = m[i * s.q_heads + h];
      float& li = l[i * s.q_heads + h];
      float* ai = acc + (i * s.q_heads + h) * D;
      // Rounded to fp32 first: acc and l are kept relative to exp(m) with m as stored.
      const double m_new = static_cast<float>(std::max(static_cast<double>(mi), block_max));
      const double rescale = std::exp(mi - m_new);  // 0 when mi == -inf
      double sum = li * rescale;
      std::vector<double> out(static_cast<size_t>(D));
      for (int64_t d = 0; d < D; ++d) out[d] = ai[d] * rescale;
      for (int64_t j = 0; j < lk; ++j) {
        if (score[j] == -INFINITY) continue;
        const double p = std::exp(score[j] - m_new);
        sum += p;
        const float* vj = v + j * ld_v + kvh * D;
        for (int64_t d = 0; d < D; ++d) out[d] += p * vj[d];
      }
      mi = static_cast<float>(m_new);
      li = static_cast<float>(sum);
      for (int64_t d = 0; d < D; ++d) ai[d] = static_cast<float>(out[d]);
    }
  }
}

// K/V widened element by element into fp32 copies, then the block above.
void attention_block_kv(const AttentionShape& s, const float* q, int64_t ld_q, int64_t lq, int64_t q_pos0,
                        DType kv_dtype, const void* k, int64_t ld_k, const void* v, int64_t ld_v, int64_t lk,
                        int64_t k_pos0, float scale, bool causal, float* acc, float* m, float* l) {
  if (kv_dtype != DType::F32 && kv_dtype != DType::BF16)
    throw std::invalid_argument("ref::attention_block_kv: K/V must be F32 or BF16");
  auto widened = [&](const void* x, int64_t ld) {
    std::vector<float> out(static_cast<size_t>(lk * ld));
    for (int64_t i = 0; i < lk * ld; ++i)
      out[i] = kv_dtype == DType::BF16 ? bf16_to_f32(static_cast<const uint16_t*>(x)[i])
                                       : static_cast<const float*>(x)[i];
    return out;
  };
  const std::vector<float> kf = widened(k, ld_k), vf = widened(v, ld_v);
  attention_block(s, q, ld_q, lq, q_pos0, kf.data(), ld_k, vf.data(), ld_v, lk, k_pos0, scale, causal, acc, m, l);
}

void attention_merge(const AttentionShape& s, int64_t lq, const float* acc2, const float* m2,
                     const float* l2, float* acc, float* m, float* l) {
  const int64_t D = s.head_dim;
  for (int64_t r = 0; r < lq * s.q_heads; ++r) {
    const double m_new = std::max(m[r], m2[r]);
    if (m_new == -INFINITY) continue;  // neither side has seen a key
    const double w1 = std::exp(m[r] - m_new), w2 = std::exp(m2[r] - m_new);
    l[r] = static_cast<float>(l[r] * w1 + l2[r] * w2);
    for (int64_t d = 0; d < D; ++d)
      acc[r * D + d] = static_cast<float>(acc[r * D + d] * w1 + acc2[r * D + d] * w2);
    m[r] = static_cast<float>(m_new);
  }
}

void attention_finalize(const AttentionShape& s, int64_t lq, const float* acc, const float* l,
                        float* out, int64_t ld_out) {
  const int64_t D = s.head_dim;
  for (int64_t i = 0; i < lq; ++i) {
    for (int64_t h = 0; h < s.q_heads; ++h) {
      const int64_t r = i * s.q_heads + h;
      for (int64_t d = 0; d < D; ++d)
        out[i * ld_out + h * D + d] = l[r] > 0 ? acc[r * D + d] / l[r] : 0.f;
    }
  }
}

// Each sequence alone: its rows are its own queries and keys (positions restart).
void attention_varlen(const AttentionShape& s, const float* q, int64_t ld_q, const float* k, int64_t ld_k,
                      const float* v, int64_t ld_v, int64_t rows, const int32_t* seq_idx, float scale, bool causal,
                      float* acc, float* m, float* l) {
  for_each_sequence(seq_idx, rows, "ref::attention_varlen", [&](int64_t r, int64_t n) {
    attention_block(s, q + r * ld_q, ld_q, n, 0, k + r * ld_k, ld_k, v + r * ld_v, ld_v, n, 0, scale, causal,
                    acc + r * s.q_heads * s.head_dim, m + r * s.q_heads, l + r * s.q_heads);
  });
}

}  // namespace ringscan::kernels::ref
