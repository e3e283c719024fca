// DeviceModel::forward_packed: short sequences stacked into one block. The
// per-token work (norms, GEMMs, MLP) runs once over all rows; the Mamba
// layers' conv and SSD scan run once over all rows as packed sequences
// (varlen: a sequence index per row, each sequence from zeros); attention
// still runs per sequence (RoPE positions and the causal mask restart).
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
  // The sequence of each row, for the packed Mamba layers.
  std::vector<int32_t> seq(N);
  for (size_t i = 0; i < seqs.size(); ++i)
    std::fill(seq.begin() + row0[i], seq.begin() + row0[i + 1], static_cast<int32_t>(i));
  // (From pageable memory: staged before the call returns, so `seq` may go.)
  cuda_check(cudaMemcpyAsync(seq_, seq.data(), N * sizeof(int32_t), cudaMemcpyHostToDevice, stream_),
             "sequence index upload");

  const int64_t qd = m.num_heads * m.head_dim, kvd = m.num_kv_heads * m.head_dim, W = qkv_dim();
  for (int layer = 0; layer < static_cast<int>(layers_.size()); ++layer) {
    norm(layer, h_, N, normed_);
    switch (layers_[layer].kind) {
      case LayerKind::Mamba: {
        const MambaBuffers all{proj_, conv_, dt_, y_};
        mamba_in_proj(layer, normed_, N, all);
        // Every sequence's conv and scan from zeros in one set of launches (varlen).
        mamba_scan(layer, N, nullptr, nullptr, all, nullptr, seq_);
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
          attention_output(n, acc_ + r * qd, l_ + r * m.num_heads, act_row(static_cast<void*>(y_), r, qd));
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
