#include "model/packed_forward.h"

#include <cmath>
#include <cstring>

#include "kernels/attention.h"
#include "kernels/elementwise.h"
#include "kernels/linear.h"
#include "kernels/rmsnorm.h"

namespace ringscan {

namespace k = kernels::cpu;

namespace {

// Mamba over stacked rows: one in_proj and out_proj for all, a scan per sequence.
void mamba_packed(const ModelConfig& c, const MambaWeights& w, const float* x, const std::vector<int64_t>& off,
                  Workspace& all, Workspace& one, float* out) {
  const int64_t N = off.back(), di = c.d_inner(), cd = c.conv_dim(), P = c.in_proj_dim();
  float* proj = mamba_in_proj(c, w, x, N, all);
  float* y = Workspace::sized(all.y, N * di);
  float* conv = Workspace::sized(all.conv, N * cd);
  for (size_t s = 0; s + 1 < off.size(); ++s) {
    const int64_t n = off[s + 1] - off[s];
    mamba_scan(c, w, proj + off[s] * P, n, nullptr, nullptr, one, nullptr);
    std::memcpy(y + off[s] * di, one.y.data(), n * di * sizeof(float));
    std::memcpy(conv + off[s] * cd, one.conv.data(), n * cd * sizeof(float));
  }
  mamba_out(c, w, proj, N, all, out);
}

// Attention over stacked rows: q/k/v and o projections for all, attention of
// each sequence over its own keys.
void attention_packed(const ModelConfig& c, const AttentionWeights& w, const float* x, const std::vector<int64_t>& off,
                      Workspace& all, float* out) {
  const int64_t N = off.back(), D = c.hidden_size, qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim;
  attention_project(c, w, x, N, all);
  const float* q = all.q.data();
  const float* kk = all.k.data();
  const float* v = all.v.data();
  float* y = Workspace::sized(all.y, N * qd);
  kernels::AttentionShape s{c.num_heads, c.num_kv_heads, c.head_dim};
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  for (size_t i = 0; i + 1 < off.size(); ++i) {
    const int64_t r0 = off[i], n = off[i + 1] - off[i];
    attention_rope(c, r0, n, 0, all);  // every sequence starts at position 0
    std::vector<float> acc(n * qd), m(n * c.num_heads), l(n * c.num_heads);
    k::attention_init(s, n, acc.data(), m.data(), l.data());
    k::attention_block(s, q + r0 * qd, qd, n, 0, kk + r0 * kvd, kvd, v + r0 * kvd, kvd, n, 0, scale, true, acc.data(),
                       m.data(), l.data());
    k::attention_finalize(s, n, acc.data(), l.data(), y + r0 * qd, qd);
  }
  k::linear(y, qd, N, w.o, out, D);
}

}  // namespace

void forward_packed(const Model& model, const std::vector<std::vector<int32_t>>& seqs, float* hidden_out) {
  const ModelConfig& c = model.config();
  const ModelWeights& w = model.weights();
  const int64_t D = c.hidden_size;
  std::vector<int64_t> off = {0};
  for (const auto& s : seqs) off.push_back(off.back() + static_cast<int64_t>(s.size()));
  const int64_t N = off.back();
  if (N == 0) return;
  for (size_t i = 0; i < seqs.size(); ++i) model.embed(seqs[i].data(), seqs[i].size(), hidden_out + off[i] * D);
  Workspace all, one;
  std::vector<float> normed(N * D), out(N * D);
  for (size_t i = 0; i < c.layers.size(); ++i) {
    const LayerWeights& L = w.layers[i];
    k::rmsnorm(hidden_out, N, D, L.norm, c.norm_eps, normed.data());
    switch (L.kind) {
      case LayerKind::Mamba: mamba_packed(c, L.mamba, normed.data(), off, all, one, out.data()); break;
      case LayerKind::Attention: attention_packed(c, L.attn, normed.data(), off, all, out.data()); break;
      case LayerKind::Mlp: mlp_mixer(c, L.mlp, normed.data(), N, all, out.data()); break;
    }
    kernels::cpu::add_inplace(out.data(), N * D, hidden_out);
  }
  k::rmsnorm(hidden_out, N, D, w.norm_f, c.norm_eps, hidden_out);
}

}  // namespace ringscan
