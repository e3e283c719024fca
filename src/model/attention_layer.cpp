#include <cmath>
#include <vector>

#include "kernels/attention.h"
#include "kernels/linear.h"
#include "kernels/rope.h"
#include "model/layers.h"

namespace ringscan {

namespace k = kernels::cpu;

void attention_project(const ModelConfig& c, const AttentionWeights& w, const float* x, int64_t n, Workspace& ws) {
  const int64_t D = c.hidden_size, qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim;
  k::linear(x, D, n, w.q, Workspace::sized(ws.q, n * qd), qd);
  k::linear(x, D, n, w.k, Workspace::sized(ws.k, n * kvd), kvd);
  k::linear(x, D, n, w.v, Workspace::sized(ws.v, n * kvd), kvd);
}

void attention_rope(const ModelConfig& c, int64_t row0, int64_t n, int64_t pos0, Workspace& ws) {
  if (!c.rope) return;
  const int64_t qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim;
  k::rope(ws.q.data() + row0 * qd, qd, n, c.num_heads, c.head_dim, c.rotary_dim, pos0, c.rope_theta);
  k::rope(ws.k.data() + row0 * kvd, kvd, n, c.num_kv_heads, c.head_dim, c.rotary_dim, pos0, c.rope_theta);
}

void attention_qkv(const ModelConfig& c, const AttentionWeights& w, const float* x, int64_t n, int64_t pos0,
                   Workspace& ws) {
  attention_project(c, w, x, n, ws);
  attention_rope(c, 0, n, pos0, ws);
}

void attention_attend_cached(const ModelConfig& c, int64_t n, int64_t pos0, LayerCache& cache, Workspace& ws) {
  const int64_t qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim;
  if (cache.kv_rows == 0) cache.kv_pos0 = pos0;
  cache.k.insert(cache.k.end(), ws.k.begin(), ws.k.begin() + n * kvd);
  cache.v.insert(cache.v.end(), ws.v.begin(), ws.v.begin() + n * kvd);
  cache.kv_rows += n;

  kernels::AttentionShape s{c.num_heads, c.num_kv_heads, c.head_dim};
  std::vector<float> m(n * c.num_heads), l(n * c.num_heads);
  float* acc = Workspace::sized(ws.gate, n * qd);
  k::attention_init(s, n, acc, m.data(), l.data());
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  // Keys after the block's last query are masked anyway; stop there.
  const int64_t visible = std::min(cache.kv_rows, pos0 + n - cache.kv_pos0);
  for (int64_t j0 = 0; j0 < visible; j0 += kAttentionKeyBlock) {
    int64_t lk = std::min(kAttentionKeyBlock, visible - j0);
    k::attention_block(s, ws.q.data(), qd, n, pos0, cache.k.data() + j0 * kvd, kvd, cache.v.data() + j0 * kvd, kvd,
                       lk, cache.kv_pos0 + j0, scale, /*causal=*/true, acc, m.data(), l.data());
  }
  float* y = Workspace::sized(ws.y, n * qd);
  k::attention_finalize(s, n, acc, l.data(), y, qd);
}

void attention_out(const ModelConfig& c, const AttentionWeights& w, int64_t n, Workspace& ws, float* out) {
  const int64_t qd = c.num_heads * c.head_dim;
  k::linear(ws.y.data(), qd, n, w.o, out, c.hidden_size);
}

void attention_mixer(const ModelConfig& c, const AttentionWeights& w, const float* x, int64_t n, int64_t pos0,
                     LayerCache& cache, Workspace& ws, float* out) {
  attention_qkv(c, w, x, n, pos0, ws);
  attention_attend_cached(c, n, pos0, cache, ws);
  attention_out(c, w, n, ws, out);
}

}  // namespace ringscan
