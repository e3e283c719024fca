// The model on one GPU (CUDA builds only; DESIGN §3): weights uploaded once,
// activations in one preallocated arena sized for a block of tokens, Mamba
// states and attention statistics in fp32. The same computation as the CPU
// Model (model.h) op for op, through kernels::cuda; GEMMs take bf16 inputs
// with fp32 accumulation by default (GemmInputs::Bf16), or the exact fp32
// inputs the CPU multiplies (GemmInputs::Fp32, for tests against it).
//
// Every pointer named d_* is device memory; ids, targets and results named
// otherwise are host memory. Work runs on the legacy default stream of the
// current device (kernels/cuda/cuda_common.cuh), which must be the device the
// model was created on.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "kernels/sampling.h"
#include "model/config.h"
#include "model/device_buffer.h"
#include "model/model.h"

namespace ringscan {

enum class GemmInputs { Bf16, Fp32 };

struct DeviceModelOptions {
  GemmInputs gemm = GemmInputs::Bf16;
  int64_t block_tokens = 0;  // tokens per prefill block (0: the host model's); also the largest decode batch
};

// What a sequence leaves behind on the device, as InferenceState on the host.
struct DeviceLayerCache {
  DeviceBuffer conv_history;  // Mamba: [K-1, conv_dim], zeros at start
  DeviceBuffer ssm_state;     // Mamba: [heads, head_dim, state]
  DeviceBuffer k, v;          // attention: [capacity, kv_heads*head_dim]
  int64_t kv_rows = 0, kv_capacity = 0, kv_pos0 = 0;
};
struct DeviceSequence {
  std::vector<DeviceLayerCache> layers;
  int64_t position = 0;
};

class DeviceModel {
 public:
  // Uploads `host`'s weights to the current device. GEMM weights are stored
  // bf16 on the device for GemmInputs::Bf16 (F32/F16 checkpoints are rounded
  // once), as in the checkpoint for Fp32.
  DeviceModel(const Model& host, const DeviceModelOptions& opt);
  ~DeviceModel();
  DeviceModel(const DeviceModel&) = delete;
  DeviceModel& operator=(const DeviceModel&) = delete;

  const ModelConfig& config() const { return cfg_; }
  int64_t block_tokens() const { return block_; }
  uint64_t weight_bytes() const { return weights_.bytes(); }
  uint64_t arena_bytes() const { return arena_.bytes(); }

  // A fresh sequence whose KV caches hold `expected_tokens` without growing
  // (they grow by doubling past it).
  DeviceSequence new_sequence(int64_t expected_tokens) const;

  // Runs ids[0..n) (host) after what `seq` holds, in blocks of block_tokens().
  // After each block, sink(row0, rows, d_hidden) sees its final hidden states
  // (after norm_f; rows row0.. of this call), valid until the next block.
  using BlockSink = std::function<void(int64_t row0, int64_t rows, const float* d_hidden)>;
  void forward(const int32_t* ids, int64_t n, DeviceSequence& seq, const BlockSink& sink);

  // Several short sequences at once, each from a fresh state (data-parallel
  // batches of a batch job; the CPU twin is model/packed_forward.h): their
  // rows, at most block_tokens() in all, are stacked so that norms,
  // projections and MLPs run as one GEMM over all rows, while the conv, the
  // SSD scan and attention run on each sequence's own rows. Then sink(i,
  // d_hidden_i) sees sequence i's final hidden states (after norm_f), valid
  // until the next call. Equals forward() of each alone up to summation order.
  using PackedSink = std::function<void(size_t i, const float* d_hidden)>;
  void forward_packed(const std::vector<std::vector<int32_t>>& seqs, const PackedSink& sink);

  // d_logits [n, vocab] = lm_head(d_hidden [n, hidden]).
  void logits(const float* d_hidden, int64_t n, float* d_logits);
  // The logits of rows of d_hidden, copied to the host [n, vocab].
  std::vector<float> logits_to_host(const float* d_hidden, int64_t n);
  // out[i] = log p(targets[i] | row i) for rows of d_hidden; targets and out on
  // the host. Runs in row blocks bounded by the arena's logits buffer.
  void target_logprobs(const float* d_hidden, int64_t n, const int32_t* targets, float* out);

  // One new token for each of n <= block_tokens() sequences (host ids), each
  // continuing its own sequence; returns the device pointer to the final
  // hidden states [n, hidden] (valid until the next call). Equals forward()
  // of each sequence alone, token by token, up to summation order.
  const float* decode_step(const int32_t* ids, int64_t n, DeviceSequence* const* seqs);

  // Next tokens from rows of final hidden states (lm_head and the draw on the
  // GPU, kernels/sampling.h): params, stream, step and out are host arrays of
  // n. Returns when out is filled.
  void sample(const float* d_hidden, int64_t n, const kernels::SamplingParams* params, const uint64_t* stream,
              const uint64_t* step, int32_t* out);

  // --- Phases, on caller-given device buffers of any n rows -------------------
  // What forward() runs per block and the sequence-parallel runner
  // (runtime/device_sequence_parallel.h) runs per segment, with exchanges
  // between them; the CPU twins are in model/layers.h.
  // Embedding rows of host ids (checked against the vocabulary), any n.
  void embed(const int32_t* ids, int64_t n, float* d_out);
  // d_out = RMSNorm of layer's input norm (layer < 0: the final norm_f); may alias.
  void norm(int layer, const float* d_h, int64_t n, float* d_out);
  // Mamba: proj [n, in_proj_dim] (z | xBC | dt_raw), conv [n, conv_dim]
  // (post-conv xBC), dt [n, heads], y [n, d_inner].
  struct MambaBuffers {
    float *proj, *conv, *dt, *y;
  };
  void mamba_in_proj(int layer, const float* d_x, int64_t n, const MambaBuffers& b);
  // Conv from d_history (K-1 pre-conv rows before the rows; null = zeros), dt,
  // and the scan from d_init (null = zeros) into b.y; d_final (may be null)
  // receives the state after the rows; d_init and d_final may be the same.
  void mamba_scan(int layer, int64_t n, const float* d_history, const float* d_init, const MambaBuffers& b,
                  float* d_final);
  // A = -exp(A_log) of a Mamba layer, on the host ([heads]).
  const std::vector<float>& mamba_A(int layer) const;
  // b.y += the contribution of an incoming state (kernels/ssd_scan.h).
  void mamba_state_correction(int layer, int64_t n, const float* d_incoming, const MambaBuffers& b);
  // D skip, gated RMSNorm, out_proj into d_out [n, hidden].
  void mamba_out(int layer, int64_t n, const MambaBuffers& b, float* d_out);
  // Attention: q [n, heads*head_dim], k, v [n, kv_heads*head_dim] (RoPE at
  // positions pos0..), y [n, heads*head_dim] (the attention output before o_proj).
  struct AttentionBuffers {
    float *q, *k, *v, *y;
  };
  void attention_qkv(int layer, const float* d_x, int64_t n, int64_t pos0, const AttentionBuffers& b);
  void attention_out(int layer, int64_t n, const AttentionBuffers& b, float* d_out);
  // MLP into d_out; up and gate are [n, intermediate] scratch (gate unused for relu2).
  void mlp(int layer, const float* d_x, int64_t n, float* d_up, float* d_gate, float* d_out);

  // Rows of logits that target_logprobs / sampling compute at once.
  int64_t logits_rows() const { return logits_rows_; }

 private:
  struct Layer;
  void upload_weights(const Model& host);  // cuda/device_weights.cpp
  void layout_arena();
  void linear(const float* d_x, int64_t ld_x, int64_t rows, const WeightView& w, float* d_y, int64_t ld_y);
  void mamba_block(int layer, DeviceLayerCache& c, int64_t n);
  void attention_block(int layer, DeviceLayerCache& c, int64_t n, int64_t pos0);
  void mamba_decode(int layer, int64_t n, DeviceSequence* const* seqs, float* const* d_states);
  void attention_decode(int layer, int64_t n, DeviceSequence* const* seqs);
  void ensure_kv_capacity(DeviceLayerCache& c, int64_t rows) const;
  void init_caches(DeviceSequence& seq) const;

  ModelConfig cfg_;
  GemmInputs gemm_;
  int64_t block_ = 0, logits_rows_ = 0;
  DeviceBuffer weights_, arena_;
  std::vector<Layer> layers_;
  WeightView embeddings_, norm_f_, lm_head_;
  // Arena views.
  float *h_ = nullptr, *normed_ = nullptr, *out_ = nullptr, *proj_ = nullptr, *conv_ = nullptr, *dt_ = nullptr,
        *y_ = nullptr, *q_ = nullptr, *k_ = nullptr, *v_ = nullptr, *acc_ = nullptr, *m_ = nullptr, *l_ = nullptr,
        *up_ = nullptr, *gate_ = nullptr, *hist_tmp_ = nullptr, *logits_ = nullptr,
        *logprob_ = nullptr;
  int32_t *ids_ = nullptr, *targets_ = nullptr;
  float** state_ptrs_ = nullptr;  // decode: one SSM state pointer per sequence
};

}  // namespace ringscan
