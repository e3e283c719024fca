// The three mixers of a Nemotron-H block, on a block of n consecutive tokens.
// `x` is the block's normed input [n, hidden]; `out` receives the mixer output
// [n, hidden] (the caller adds the residual).
//
// Mamba and attention are also exposed in phases, so that runtime/ can put
// communication between them for sequence parallelism (conv halo and state scan
// between the Mamba phases, ring K/V passing in place of attend_cached).
#pragma once
#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/inference_state.h"
#include "model/weights.h"

namespace ringscan {

// Scratch buffers reused across layers and blocks (capacity is kept).
struct Workspace {
  std::vector<float> proj, conv, dt, y, q, k, v, gate, up;
  static float* sized(std::vector<float>& v, size_t n) {
    if (v.size() < n) v.resize(n);
    return v.data();
  }
};

// --- Mamba-2 -----------------------------------------------------------------
// Phase 1: in_proj. Returns proj [n, in_proj_dim] = z | xBC (pre-conv) | dt_raw.
float* mamba_in_proj(const ModelConfig& c, const MambaWeights& w, const float* x, int64_t n, Workspace& ws);

// Phase 2: conv (with `history`, the K-1 pre-conv rows before the block, null
// = zeros), dt, SSD scan from `init_state` (null = zeros) into ws.y [n, d_inner]
// (without the D skip). final_state [heads, head_dim, state] may be null.
// Leaves ws.conv (post-conv xBC) and ws.dt for phase 3 or a state correction.
void mamba_scan(const ModelConfig& c, const MambaWeights& w, const float* proj, int64_t n,
                const float* history, const float* init_state, Workspace& ws, float* final_state);

// Phase 3: y += D*x, gated RMSNorm with z, out_proj.
void mamba_out(const ModelConfig& c, const MambaWeights& w, const float* proj, int64_t n, Workspace& ws, float* out);

// The last K-1 pre-conv xBC rows after this block, given those before it.
void mamba_next_history(const ModelConfig& c, const float* proj, int64_t n, std::vector<float>& history);

// All phases, continuing from and updating cache.
void mamba_mixer(const ModelConfig& c, const MambaWeights& w, const float* x, int64_t n, LayerCache& cache,
                 Workspace& ws, float* out);

// --- Attention -------------------------------------------------------------------
// Phase 1: q, k, v projections into ws.q [n, H*hd], ws.k, ws.v [n, Hkv*hd],
// with RoPE at positions pos0.. when the config has it.
void attention_qkv(const ModelConfig& c, const AttentionWeights& w, const float* x, int64_t n, int64_t pos0,
                   Workspace& ws);
// Its two halves: the projections alone, and RoPE on rows [row0, row0 + n) of
// ws.q/ws.k at positions pos0.. (a no-op without RoPE). Packed batches rotate
// each sequence from position 0.
void attention_project(const ModelConfig& c, const AttentionWeights& w, const float* x, int64_t n, Workspace& ws);
void attention_rope(const ModelConfig& c, int64_t row0, int64_t n, int64_t pos0, Workspace& ws);

// Phase 2 (single sequence): appends ws.k/ws.v to the cache and attends the n
// queries over every cached key, causally. Result in ws.y [n, H*hd].
void attention_attend_cached(const ModelConfig& c, int64_t n, int64_t pos0, LayerCache& cache, Workspace& ws);

// Phase 3: o_proj of ws.y.
void attention_out(const ModelConfig& c, const AttentionWeights& w, int64_t n, Workspace& ws, float* out);

void attention_mixer(const ModelConfig& c, const AttentionWeights& w, const float* x, int64_t n, int64_t pos0,
                     LayerCache& cache, Workspace& ws, float* out);

// --- MLP -------------------------------------------------------------------------
void mlp_mixer(const ModelConfig& c, const MlpWeights& w, const float* x, int64_t n, Workspace& ws, float* out);

// Key block size for attention over a cache: bounds the score scratch.
inline constexpr int64_t kAttentionKeyBlock = 512;

}  // namespace ringscan
