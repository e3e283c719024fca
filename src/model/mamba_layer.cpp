#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/activations.h"
#include "kernels/causal_conv1d.h"
#include "kernels/elementwise.h"
#include "kernels/gated_rmsnorm.h"
#include "kernels/linear.h"
#include "kernels/ssd_scan.h"
#include "model/layers.h"

namespace ringscan {

namespace k = kernels::cpu;

float* mamba_in_proj(const ModelConfig& c, const MambaWeights& w, const float* x, int64_t n, Workspace& ws) {
  float* proj = Workspace::sized(ws.proj, n * c.in_proj_dim());
  k::linear(x, c.hidden_size, n, w.in_proj, proj, c.in_proj_dim());
  return proj;
}

void mamba_scan(const ModelConfig& c, const MambaWeights& w, const float* proj, int64_t n,
                const float* history, const float* init_state, Workspace& ws, float* final_state) {
  const int64_t di = c.d_inner(), cd = c.conv_dim(), P = c.in_proj_dim(), H = c.mamba_heads;
  const int64_t GN = c.n_groups * c.ssm_state;
  float* xbc = Workspace::sized(ws.conv, n * cd);
  k::causal_conv1d(proj + di, P, n, cd, history, w.conv_w, w.conv_b, /*apply_silu=*/true, xbc);

  float* dt = Workspace::sized(ws.dt, n * H);
  k::dt_softplus(proj + di + cd, P, n, H, w.dt_bias, c.dt_min_limit, c.dt_max_limit, dt);

  std::vector<float> A(H);
  for (int64_t h = 0; h < H; ++h) A[h] = -std::exp(w.A_log.at(h));

  kernels::SsdShape s{n, H, c.mamba_head_dim, c.n_groups, c.ssm_state, c.chunk_size};
  float* y = Workspace::sized(ws.y, n * di);
  k::ssd_scan(s, xbc, cd, dt, A.data(), xbc + di, cd, xbc + di + GN, cd, init_state, y, di, final_state);
}

void mamba_out(const ModelConfig& c, const MambaWeights& w, const float* proj, int64_t n, Workspace& ws, float* out) {
  const int64_t di = c.d_inner(), cd = c.conv_dim(), hd = c.mamba_head_dim, H = c.mamba_heads;
  float* y = ws.y.data();
  const float* xbc = ws.conv.data();
  std::vector<float> D(H);
  for (int64_t h = 0; h < H; ++h) D[h] = w.D.at(h);
  k::head_scale_add(xbc, cd, n, H, hd, D.data(), y);
  k::gated_rmsnorm(y, proj, c.in_proj_dim(), n, di, di / c.n_groups, w.norm, c.norm_eps, y);
  k::linear(y, di, n, w.out_proj, out, c.hidden_size);
}

void mamba_next_history(const ModelConfig& c, const float* proj, int64_t n, std::vector<float>& history) {
  const int64_t K1 = c.conv_kernel - 1, cd = c.conv_dim(), di = c.d_inner(), P = c.in_proj_dim();
  if (K1 == 0) return;
  history.resize(K1 * cd, 0.f);
  // New history = last K-1 rows of [history; block rows].
  std::vector<float> next(K1 * cd);
  for (int64_t r = 0; r < K1; ++r) {
    int64_t src = n - K1 + r;  // row index in the block; negative = from the old history
    const float* row = src >= 0 ? proj + src * P + di : history.data() + (K1 + src) * cd;
    std::memcpy(next.data() + r * cd, row, cd * sizeof(float));
  }
  history.swap(next);
}

void mamba_mixer(const ModelConfig& c, const MambaWeights& w, const float* x, int64_t n, LayerCache& cache,
                 Workspace& ws, float* out) {
  const int64_t state_elems = c.ssm_state_elems();
  if (cache.ssm_state.empty()) cache.ssm_state.assign(state_elems, 0.f);
  if (cache.conv_history.empty()) cache.conv_history.assign(c.conv_history_elems(), 0.f);
  float* proj = mamba_in_proj(c, w, x, n, ws);
  // ssd_scan does not promise that init_state and final_state may alias.
  std::vector<float> init = cache.ssm_state;
  mamba_scan(c, w, proj, n, cache.conv_history.data(), init.data(), ws, cache.ssm_state.data());
  mamba_next_history(c, proj, n, cache.conv_history);
  mamba_out(c, w, proj, n, ws, out);
}

}  // namespace ringscan
