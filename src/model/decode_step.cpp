// Batched single-token decode: the rows of all sequences go through the
// per-token layers together (one GEMM per projection for the whole batch,
// which is what makes batch 64 far cheaper than 64 steps of batch 1); only
// what lives in a sequence's own state (conv history, SSM state, KV cache)
// runs per sequence.
#include <cmath>
#include <cstring>
#include <string>

#include "kernels/elementwise.h"
#include "kernels/activations.h"
#include "kernels/attention.h"
#include "kernels/causal_conv1d.h"
#include "kernels/embedding.h"
#include "kernels/linear.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/ssd_step.h"
#include "model/model.h"
#include "util/error.h"

namespace ringscan {

namespace k = kernels::cpu;

namespace {

// Sequence i's attention over its own cache: appends the new K/V row and folds
// the cache in key blocks, as attention_attend_cached does for one query.
void attend_own_cache(const ModelConfig& c, LayerCache& cache, int64_t pos, const float* q, const float* kk,
                      const float* v, float* y) {
  const int64_t kvd = c.num_kv_heads * c.head_dim;
  if (cache.kv_rows == 0) cache.kv_pos0 = pos;
  if (cache.kv_pos0 + cache.kv_rows != pos)
    throw Error("decode: a sequence's KV cache ends at position " + std::to_string(cache.kv_pos0 + cache.kv_rows) +
                " but its next token is at position " + std::to_string(pos));
  cache.k.insert(cache.k.end(), kk, kk + kvd);
  cache.v.insert(cache.v.end(), v, v + kvd);
  cache.kv_rows += 1;
  kernels::AttentionShape s{c.num_heads, c.num_kv_heads, c.head_dim};
  std::vector<float> acc(c.num_heads * c.head_dim), m(c.num_heads), l(c.num_heads);
  k::attention_init(s, 1, acc.data(), m.data(), l.data());
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  for (int64_t j0 = 0; j0 < cache.kv_rows; j0 += kAttentionKeyBlock) {
    const int64_t lk = std::min(kAttentionKeyBlock, cache.kv_rows - j0);
    k::attention_block(s, q, c.num_heads * c.head_dim, 1, pos, cache.k.data() + j0 * kvd, kvd,
                       cache.v.data() + j0 * kvd, kvd, lk, cache.kv_pos0 + j0, scale, /*causal=*/true, acc.data(),
                       m.data(), l.data());
  }
  k::attention_finalize(s, 1, acc.data(), l.data(), y, c.num_heads * c.head_dim);
}

}  // namespace

void Model::decode_step(const int32_t* ids, int64_t n, InferenceState* const* states, float* hidden_out,
                        const DecodeAttention& attend) {
  const ModelConfig& c = cfg_;
  const int64_t D = c.hidden_size;
  if (n <= 0) return;
  for (int64_t i = 0; i < n; ++i)
    if (states[i]->layers.size() != c.layers.size()) states[i]->layers.resize(c.layers.size());
  float* h = hidden_out;
  embed(ids, n, h);
  std::vector<float> normed(n * D), out(n * D);

  for (size_t li = 0; li < c.layers.size(); ++li) {
    const int layer = static_cast<int>(li);
    const LayerWeights& L = w_.layers[li];
    k::rmsnorm(h, n, D, L.norm, c.norm_eps, normed.data());
    switch (L.kind) {
      case LayerKind::Mamba: {
        const int64_t di = c.d_inner(), cd = c.conv_dim(), P = c.in_proj_dim(), H = c.mamba_heads;
        const int64_t GN = c.n_groups * c.ssm_state;
        const size_t state_elems = static_cast<size_t>(H * c.mamba_head_dim * c.ssm_state);
        const float* proj = mamba_in_proj(c, L.mamba, normed.data(), n, ws_);
        // mamba_out reads the batch's post-conv rows (ws_.conv) and scan outputs (ws_.y).
        float* xbc = Workspace::sized(ws_.conv, n * cd);
        float* y = Workspace::sized(ws_.y, n * di);
        float* dt = Workspace::sized(ws_.dt, n * H);
        std::vector<float*> ssm(n);
        for (int64_t i = 0; i < n; ++i) {  // the conv from each sequence's own history
          LayerCache& lc = states[i]->layers[li];
          if (lc.ssm_state.empty()) lc.ssm_state.assign(state_elems, 0.f);
          if (lc.conv_history.empty()) lc.conv_history.assign((c.conv_kernel - 1) * cd, 0.f);
          k::causal_conv1d(proj + i * P + di, P, 1, cd, lc.conv_history.data(), L.mamba.conv_w, L.mamba.conv_b,
                           /*apply_silu=*/true, xbc + i * cd);
          mamba_next_history(c, proj + i * P, 1, lc.conv_history);
          ssm[i] = lc.ssm_state.data();
        }
        k::dt_softplus(proj + di + cd, P, n, H, L.mamba.dt_bias, c.dt_min_limit, c.dt_max_limit, dt);
        std::vector<float> A(H);
        for (int64_t h = 0; h < H; ++h) A[h] = -std::exp(L.mamba.A_log.at(h));
        kernels::SsdShape s{n, H, c.mamba_head_dim, c.n_groups, c.ssm_state, c.chunk_size};
        k::ssd_step(s, xbc, cd, dt, A.data(), xbc + di, cd, xbc + di + GN, cd, ssm.data(), y, di);
        mamba_out(c, L.mamba, proj, n, ws_, out.data());
        break;
      }
      case LayerKind::Attention: {
        const int64_t qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim;
        float* q = Workspace::sized(ws_.q, n * qd);
        float* kk = Workspace::sized(ws_.k, n * kvd);
        float* v = Workspace::sized(ws_.v, n * kvd);
        k::linear(normed.data(), D, n, L.attn.q, q, qd);
        k::linear(normed.data(), D, n, L.attn.k, kk, kvd);
        k::linear(normed.data(), D, n, L.attn.v, v, kvd);
        if (c.rope)
          for (int64_t i = 0; i < n; ++i) {  // each row at its own sequence's position
            k::rope(q + i * qd, qd, 1, c.num_heads, c.head_dim, c.rotary_dim, states[i]->position, c.rope_theta);
            k::rope(kk + i * kvd, kvd, 1, c.num_kv_heads, c.head_dim, c.rotary_dim, states[i]->position,
                    c.rope_theta);
          }
        float* y = Workspace::sized(ws_.y, n * qd);
        if (attend) {
          attend(layer, n, q, kk, v, y);
        } else {
          for (int64_t i = 0; i < n; ++i)
            attend_own_cache(c, states[i]->layers[li], states[i]->position, q + i * qd, kk + i * kvd, v + i * kvd,
                             y + i * qd);
        }
        attention_out(c, L.attn, n, ws_, out.data());
        break;
      }
      case LayerKind::Mlp: mlp_mixer(c, L.mlp, normed.data(), n, ws_, out.data()); break;
    }
    kernels::cpu::add_inplace(out.data(), n * D, h);
  }
  k::rmsnorm(h, n, D, w_.norm_f, c.norm_eps, h);
  for (int64_t i = 0; i < n; ++i) states[i]->position += 1;
}

}  // namespace ringscan
