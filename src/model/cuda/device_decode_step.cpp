// DeviceModel::decode_step: one new token for each of a batch of sequences.
// Norms, projections and MLPs run on the n rows as one matrix; the conv, the
// SSM step and attention on each sequence's own state (model/decode_step.cpp
// is the CPU twin).
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/activations.h"
#include "kernels/attention.h"
#include "kernels/causal_conv1d.h"
#include "kernels/gated_rmsnorm.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/ssd_step.h"
#include "model/cuda/device_model_impl.h"

namespace ringscan {

namespace k = kernels::cuda;

const float* DeviceModel::decode_step(const int32_t* ids, int64_t n, DeviceSequence* const* seqs) {
  if (n < 1 || n > block_)
    throw Error("decode batch of " + std::to_string(n) + " sequences: the GPU engine takes 1.." +
                std::to_string(block_) + " at once");
  for (int64_t i = 0; i < n; ++i) {
    // The SSM step updates each state in place: one sequence twice in a batch would race.
    for (int64_t j = 0; j < i; ++j)
      if (seqs[j] == seqs[i])
        throw Error("decode step: sequence " + std::to_string(i) + " is also sequence " + std::to_string(j) +
                    " of the same batch");
    init_caches(*seqs[i]);
    for (size_t li = 0; li < layers_.size(); ++li) {
      const DeviceLayerCache& c = seqs[i]->layers[li];
      if (layers_[li].kind == LayerKind::Attention && c.kv_rows > 0 && c.kv_pos0 + c.kv_rows != seqs[i]->position)
        throw Error("decode step: sequence " + std::to_string(i) + " is at position " +
                    std::to_string(seqs[i]->position) + " but its KV cache ends at " +
                    std::to_string(c.kv_pos0 + c.kv_rows));
    }
  }
  // Every Mamba layer's state pointers for the batch, uploaded once per step.
  std::vector<float*> ptrs;
  for (size_t li = 0; li < layers_.size(); ++li)
    if (layers_[li].kind == LayerKind::Mamba)
      for (int64_t i = 0; i < n; ++i) ptrs.push_back(seqs[i]->layers[li].ssm_state.as<float>());
  if (!ptrs.empty())
    cuda_check(cudaMemcpy(state_ptrs_, ptrs.data(), ptrs.size() * sizeof(float*), cudaMemcpyHostToDevice),
               "state pointer upload");

  embed(ids, n, h_);
  int mamba_index = 0;
  for (int li = 0; li < static_cast<int>(layers_.size()); ++li) {
    norm(li, h_, n, normed_);
    switch (layers_[li].kind) {
      case LayerKind::Mamba: mamba_decode(li, n, seqs, state_ptrs_ + mamba_index++ * n); break;
      case LayerKind::Attention: attention_decode(li, n, seqs); break;
      case LayerKind::Mlp: mlp(li, normed_, n, up_, gate_, h_, /*accumulate=*/true); break;
    }
  }
  norm(-1, h_, n, h_);
  for (int64_t i = 0; i < n; ++i) ++seqs[i]->position;
  return h_;
}

void DeviceModel::mamba_decode(int layer, int64_t n, DeviceSequence* const* seqs, float* const* d_states) {
  const ModelConfig& m = cfg_;
  const Layer& L = layers_[layer];
  const int64_t di = m.d_inner(), cd = m.conv_dim(), P = m.in_proj_dim(), H = m.mamba_heads;
  const int64_t GN = m.n_groups * m.ssm_state, K1 = m.conv_kernel - 1;
  const size_t row = cd * sizeof(float);
  const MambaBuffers b{proj_, conv_, dt_, y_};
  mamba_in_proj(layer, normed_, n, b);
  for (int64_t i = 0; i < n; ++i) {
    float* hist = seqs[i]->layers[layer].conv_history.as<float>();
    k::causal_conv1d(proj_ + i * P + di, P, 1, cd, hist, L.conv_w, L.conv_b, /*apply_silu=*/true, conv_ + i * cd, stream_);
    // History after the token: its last K-2 rows, then the token's pre-conv row
    // (through hist_tmp_: a copy onto an overlapping range is not allowed).
    if (K1 > 0) {
      if (K1 > 1)
        cuda_check(cudaMemcpyAsync(hist_tmp_, hist + cd, (K1 - 1) * row, cudaMemcpyDeviceToDevice, stream_), "conv history");
      cuda_check(cudaMemcpyAsync(hist_tmp_ + (K1 - 1) * cd, proj_ + i * P + di, row, cudaMemcpyDeviceToDevice, stream_),
                 "conv history");
      cuda_check(cudaMemcpyAsync(hist, hist_tmp_, K1 * row, cudaMemcpyDeviceToDevice, stream_), "conv history");
    }
  }
  k::dt_softplus(proj_ + di + cd, P, n, H, L.dt_bias, m.dt_min_limit, m.dt_max_limit, dt_, stream_);
  const kernels::SsdShape s{n, H, m.mamba_head_dim, m.n_groups, m.ssm_state, m.chunk_size};
  k::ssd_step(s, conv_, cd, dt_, static_cast<const float*>(L.A.data), conv_ + di, cd, conv_ + di + GN, cd, d_states,
              y_, di, stream_);
  mamba_out(layer, n, b, h_, /*accumulate=*/true);
}

void DeviceModel::attention_decode(int layer, int64_t n, DeviceSequence* const* seqs) {
  const ModelConfig& m = cfg_;
  const int64_t D = m.hidden_size, qd = m.num_heads * m.head_dim, kvd = m.num_kv_heads * m.head_dim, W = qkv_dim();
  // Projections for all rows at once (one fused GEMM); RoPE per row below, at
  // each sequence's own position.
  linear(normed_, act_dtype(), D, n, layers_[layer].qkv, qkv_, DType::F32, W);
  const kernels::AttentionShape s{m.num_heads, m.num_kv_heads, m.head_dim};
  const float scale = 1.0f / std::sqrt(static_cast<float>(m.head_dim));
  k::attention_init(s, n, acc_, m_, l_, stream_);
  for (int64_t i = 0; i < n; ++i) {
    DeviceLayerCache& c = seqs[i]->layers[layer];
    const int64_t pos = seqs[i]->position;
    float *q = qkv_ + i * W, *kr = q + qd, *vr = kr + kvd;
    if (m.rope) {
      k::rope(q, W, 1, m.num_heads, m.head_dim, m.rotary_dim, pos, m.rope_theta, stream_);
      k::rope(kr, W, 1, m.num_kv_heads, m.head_dim, m.rotary_dim, pos, m.rope_theta, stream_);
    }
    if (c.kv_rows == 0) c.kv_pos0 = pos;
    ensure_kv_capacity(c, c.kv_rows + 1);
    const size_t bytes = kvd * sizeof(float);
    cuda_check(cudaMemcpyAsync(c.k.as<float>() + c.kv_rows * kvd, kr, bytes, cudaMemcpyDeviceToDevice, stream_),
               "K append");
    cuda_check(cudaMemcpyAsync(c.v.as<float>() + c.kv_rows * kvd, vr, bytes, cudaMemcpyDeviceToDevice, stream_),
               "V append");
    ++c.kv_rows;
    k::attention_block(s, q, W, 1, pos, c.k.as<float>(), kvd, c.v.as<float>(), kvd, c.kv_rows, c.kv_pos0, scale,
                       /*causal=*/true, acc_ + i * qd, m_ + i * m.num_heads, l_ + i * m.num_heads, stream_);
  }
  attention_output(n, acc_, l_, y_);
  attention_out(layer, n, y_, h_, /*accumulate=*/true);
}

}  // namespace ringscan
