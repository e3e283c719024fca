// DeviceModel::forward_packed: short sequences stacked into one block. The
// per-token work (norms, GEMMs, MLP) runs once over all rows; the Mamba
// layers' conv and SSD scan run once over all rows as packed sequences
// (varlen: a sequence index per row, each sequence from zeros), and so does
// attention: one Q/K/V GEMM, RoPE at each row's position in its sequence, one
// varlen attention launch in which each row sees its own sequence's keys.
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
  // The sequence of each row (an empty sequence's id is skipped), and with
  // RoPE its position in it.
  std::vector<int32_t> seq(N);
  for (size_t i = 0; i < seqs.size(); ++i)
    std::fill(seq.begin() + row0[i], seq.begin() + row0[i + 1], static_cast<int32_t>(i));
  // (From pageable memory: staged before the call returns, so `seq` may go.)
  cuda_check(cudaMemcpyAsync(seq_, seq.data(), N * sizeof(int32_t), cudaMemcpyHostToDevice, stream_),
             "sequence index upload");
  std::vector<int64_t> pos;
  if (m.rope) {
    pos.resize(N);
    for (size_t i = 0; i < seqs.size(); ++i) std::iota(pos.begin() + row0[i], pos.begin() + row0[i + 1], int64_t{0});
    cuda_check(cudaMemcpyAsync(pos_, pos.data(), N * sizeof(int64_t), cudaMemcpyHostToDevice, stream_),
               "position upload");
  }

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
        attention_qkv(layer, normed_, N, 0, qkv_, m.rope ? pos_ : nullptr);
        k::attention_init(s, N, acc_, m_, l_, stream_);
        attention_fold_varlen(qkv_, N, seq_, acc_, m_, l_);
        attention_output(N, acc_, l_, y_);
        mark("attention kernel");
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
