// DeviceModel::forward_packed: short sequences stacked into one block.
#include <cmath>
#include <numeric>

#include "kernels/attention.h"
#include "model/cuda/device_model_impl.h"

namespace ringscan {

namespace k = kernels::cuda;

void DeviceModel::forward_packed(const std::vector<std::vector<int32_t>>& seqs, const PackedSink& sink) {
  const ModelConfig& m = cfg_;
  const int64_t D = m.hidden_size;
  std::vector<int64_t> row0(seqs.size() + 1, 0);
  for (size_t i = 0; i < seqs.size(); ++i) row0[i + 1] = row0[i] + static_cast<int64_t>(seqs[i].size());
  const int64_t N = row0.back();
  if (N > block_)
    throw Error("packed prefill of " + std::to_string(N) + " tokens: the GPU engine stacks at most " +
                std::to_string(block_) + " (one block)");
  if (N == 0) return;
  std::vector<int32_t> ids;
  ids.reserve(N);
  for (const auto& s : seqs) ids.insert(ids.end(), s.begin(), s.end());
  embed(ids.data(), N, h_);

  const int64_t P = m.count(LayerKind::Mamba) ? m.in_proj_dim() : 0, cd = m.count(LayerKind::Mamba) ? m.conv_dim() : 0;
  const int64_t H = m.mamba_heads, di = m.count(LayerKind::Mamba) ? m.d_inner() : 0;
  const int64_t qd = m.num_heads * m.head_dim, kvd = m.num_kv_heads * m.head_dim, W = qkv_dim();
  for (int layer = 0; layer < static_cast<int>(layers_.size()); ++layer) {
    norm(layer, h_, N, normed_);
    switch (layers_[layer].kind) {
      case LayerKind::Mamba: {
        const MambaBuffers all{proj_, conv_, dt_, y_};
        mamba_in_proj(layer, normed_, N, all);
        for (size_t i = 0; i < seqs.size(); ++i) {
          const int64_t r = row0[i], n = row0[i + 1] - r;
          if (n == 0) continue;
          // Each sequence from zero conv history and zero state.
          mamba_scan(layer, n, nullptr, nullptr, MambaBuffers{proj_ + r * P, conv_ + r * cd, dt_ + r * H, y_ + r * di},
                     nullptr);
        }
        mamba_out(layer, N, all, h_, /*accumulate=*/true);
        break;
      }
      case LayerKind::Attention: {
        const kernels::AttentionShape s{m.num_heads, m.num_kv_heads, m.head_dim};
        for (size_t i = 0; i < seqs.size(); ++i) {
          const int64_t r = row0[i], n = row0[i + 1] - r;
          if (n == 0) continue;
          // Per sequence: RoPE restarts at position 0 for each.
          float* qkv = qkv_ + r * W;
          attention_qkv(layer, act_row(normed_, r, D), n, 0, qkv);
          k::attention_init(s, n, acc_ + r * qd, m_ + r * m.num_heads, l_ + r * m.num_heads, stream_);
          attention_fold(qkv, W, n, 0, qkv + qd, qkv + qd + kvd, W, n, 0, acc_ + r * qd, m_ + r * m.num_heads,
                         l_ + r * m.num_heads);
          k::attention_finalize(s, n, acc_ + r * qd, l_ + r * m.num_heads, y_ + r * qd, qd, stream_);
        }
        attention_out(layer, N, y_, h_, /*accumulate=*/true);
        break;
      }
      case LayerKind::Mlp: mlp(layer, normed_, N, up_, gate_, h_, /*accumulate=*/true); break;
    }
  }
  norm(-1, h_, N, h_);
  for (size_t i = 0; i < seqs.size(); ++i) sink(i, h_ + row0[i] * D);
}

}  // namespace ringscan
