// DeviceModel: prefill and scoring (decode in device_decode_step.cpp). Each
// mixer is the CPU layer code of model/*_layer.cpp with kernels::cuda ops on
// arena buffers; comments there explain the math.
#include "model/device_model.h"

#include <algorithm>
#include <cmath>

#include "kernels/activations.h"
#include "kernels/attention.h"
#include "kernels/causal_conv1d.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/gated_rmsnorm.h"
#include "kernels/kv_append.h"
#include "kernels/linear.h"
#include "kernels/log_softmax.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/sampling.h"
#include "kernels/ssd_scan.h"
#include "model/cuda/device_model_impl.h"
#include "model/device_profiler.h"

namespace ringscan {

namespace k = kernels::cuda;

DeviceModel::DeviceModel(const Model& host, const DeviceModelOptions& opt)
    : cfg_(host.config()),
      gemm_(opt.gemm),
      block_(opt.block_tokens > 0 ? opt.block_tokens : host.block_tokens()),
      kv_dtype_(opt.kv_cache.value_or(opt.gemm == GemmInputs::Bf16 ? DType::BF16 : DType::F32)),
      decode_graphs_(opt.decode_graphs),
      graph_cache_(std::max(opt.graph_cache, 1)) {
  if (block_ < 1) throw Error("the GPU engine needs a block of at least one token, not " + std::to_string(block_));
  if (kv_dtype_ != DType::F32 && kv_dtype_ != DType::BF16)
    throw Error(std::string("the GPU engine's KV cache is F32 or BF16, not ") + dtype_name(kv_dtype_));
  if (kv_dtype_ == DType::BF16 && gemm_ == GemmInputs::Fp32)
    throw Error("a BF16 KV cache needs bf16 GEMM inputs: the fp32 engine's attention reads fp32 keys and values");
  cudaStream_t s = nullptr;
  cuda_check(cudaStreamCreate(&s), "creating the engine's stream");
  stream_ = s;
  upload_weights(host);
  layout_arena();
  upload_done_ = std::make_unique<EventHandle>();
  if (!upload_done_->e) throw Error("CUDA: creating the engine's event failed");
}

DeviceModel::DeviceModel(SiblingOf p)
    : cfg_(p.parent->cfg_),
      gemm_(p.parent->gemm_),
      block_(p.parent->block_),
      layers_(p.parent->layers_),
      embeddings_(p.parent->embeddings_),
      norm_f_(p.parent->norm_f_),
      lm_head_(p.parent->lm_head_),
      kv_dtype_(p.parent->kv_dtype_),
      decode_graphs_(p.parent->decode_graphs_),
      graph_cache_(p.parent->graph_cache_) {
  cudaStream_t s = nullptr;
  cuda_check(cudaStreamCreate(&s), "creating a sibling engine's stream");
  stream_ = s;
  layout_arena();
  gemm_ws_own_ = DeviceBuffer(kernels::cuda::kGemmWorkspaceBytes, "a sibling engine's cuBLAS workspace");
  kernels::cuda::set_gemm_workspace(stream_, gemm_ws_own_.get(), gemm_ws_own_.bytes());
  upload_done_ = std::make_unique<EventHandle>();
  if (!upload_done_->e) throw Error("CUDA: creating the engine's event failed");
}

std::unique_ptr<DeviceModel> DeviceModel::make_sibling() const {
  return std::unique_ptr<DeviceModel>(new DeviceModel(SiblingOf{this}));
}

uint64_t DeviceModel::sibling_bytes() const { return arena_.bytes() + kernels::cuda::kGemmWorkspaceBytes; }

// Queued work may still use the arena, the caches and the pinned tables: drain it first.
DeviceModel::~DeviceModel() {
  cudaStreamSynchronize(stream_);
  if (gemm_ws_own_.get()) kernels::cuda::set_gemm_workspace(stream_, nullptr, 0);
  graphs_.clear();
  upload_done_.reset();
  if (h_tables_) cudaFreeHost(h_tables_);
  cudaStreamDestroy(stream_);
}

void DeviceModel::linear(const void* d_x, DType x_dtype, int64_t ld_x, int64_t rows, const WeightView& w, void* d_y,
                         DType y_dtype, int64_t ld_y, bool accumulate) {
  if (gemm_ == GemmInputs::Bf16) {
    k::gemm_bf16(d_x, x_dtype, ld_x, rows, w, d_y, y_dtype, ld_y, accumulate, gemm_ws_, stream_);
    return;
  }
  if (x_dtype != DType::F32 || y_dtype != DType::F32)
    throw Error("internal: the fp32 GEMM path was given " + std::string(dtype_name(x_dtype)) + " -> " +
                dtype_name(y_dtype));
  const float* x = static_cast<const float*>(d_x);
  float* y = static_cast<float*>(d_y);
  if (accumulate)
    k::linear_accumulate(x, ld_x, rows, w, y, ld_y, stream_);
  else
    k::linear(x, ld_x, rows, w, y, ld_y, stream_);
}

void DeviceModel::init_caches(DeviceSequence& seq) const {
  if (!seq.layers.empty()) return;
  seq.layers.resize(cfg_.layers.size());
  for (size_t i = 0; i < cfg_.layers.size(); ++i) {
    DeviceLayerCache& c = seq.layers[i];
    c.kv_dtype = kv_dtype_;
    if (cfg_.layers[i] != LayerKind::Mamba) continue;
    const int64_t K1 = cfg_.conv_kernel - 1;
    c.conv_history = DeviceBuffer(uint64_t(std::max<int64_t>(K1, 1)) * cfg_.conv_dim() * 4, "a conv history");
    c.ssm_state = DeviceBuffer(uint64_t(cfg_.ssm_state_elems()) * 4, "an SSM state");
    c.conv_history.zero();
    c.ssm_state.zero();
  }
}

DeviceSequence DeviceModel::new_sequence(int64_t expected_tokens) const {
  DeviceSequence seq;
  init_caches(seq);
  for (size_t i = 0; i < cfg_.layers.size(); ++i)
    if (cfg_.layers[i] == LayerKind::Attention) ensure_kv_capacity(seq.layers[i], std::max<int64_t>(expected_tokens, 1));
  return seq;
}

void DeviceModel::ensure_kv_capacity(DeviceLayerCache& c, int64_t rows) const {
  if (rows <= c.kv_capacity) return;
  const int64_t cap = std::max({rows, 2 * c.kv_capacity, int64_t{256}});
  const uint64_t row_bytes = uint64_t(cfg_.num_kv_heads) * cfg_.head_dim * dtype_size(c.kv_dtype);
  DeviceBuffer nk(cap * row_bytes, "a KV cache"), nv(cap * row_bytes, "a KV cache");
  if (c.kv_rows > 0) {
    cuda_check(cudaMemcpyAsync(nk.get(), c.k.get(), c.kv_rows * row_bytes, cudaMemcpyDeviceToDevice, stream_), "KV copy");
    cuda_check(cudaMemcpyAsync(nv.get(), c.v.get(), c.kv_rows * row_bytes, cudaMemcpyDeviceToDevice, stream_), "KV copy");
  }
  // The old buffers are freed below: the copies out of them must be done first.
  cuda_check(cudaStreamSynchronize(stream_), "KV copy");
  c.k = std::move(nk);
  c.v = std::move(nv);
  c.kv_capacity = cap;
}

void DeviceModel::embed(const int32_t* ids, int64_t n, float* d_out) {
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= cfg_.vocab_size)
      throw Error("token id " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                  " is outside the model's vocabulary (0.." + std::to_string(cfg_.vocab_size - 1) + ")");
  // Through the arena's id buffer, a block at a time. A pageable-memory copy
  // waits for earlier work on the stream, so the kernels still reading ids_
  // are done before it is overwritten.
  for (int64_t r0 = 0; r0 < n; r0 += block_) {
    const int64_t nr = std::min(block_, n - r0);
    cuda_check(cudaMemcpy(ids_, ids + r0, nr * sizeof(int32_t), cudaMemcpyHostToDevice), "ids upload");
    k::embedding(embeddings_, ids_, nr, d_out + r0 * cfg_.hidden_size, stream_);
  }
}

void DeviceModel::norm(int layer, const float* d_h, int64_t n, float* d_out) {
  if (layer < 0)
    k::rmsnorm(d_h, n, cfg_.hidden_size, norm_f_, cfg_.norm_eps, d_out, stream_);
  else
    k::rmsnorm_to(d_h, n, cfg_.hidden_size, layers_[layer].norm, cfg_.norm_eps, d_out, act_dtype(), stream_);
}

void DeviceModel::mark(const char* label) {
  if (prof_ && !capturing_) prof_->mark(label, stream_);  // a graph replays kernels, not the profiler's bookkeeping
}

void DeviceModel::forward(const int32_t* ids, int64_t n, DeviceSequence& seq, const BlockSink& sink) {
  init_caches(seq);
  mark("(before forward)");
  for (int64_t b0 = 0; b0 < n; b0 += block_) {
    const int64_t nb = std::min(block_, n - b0), pos0 = seq.position;
    embed(ids + b0, nb, h_);
    mark("embed");
    for (int i = 0; i < static_cast<int>(layers_.size()); ++i) {
      norm(i, h_, nb, normed_);
      mark("norm");
      // Each mixer's last GEMM adds into the residual stream h_ (its epilogue).
      switch (layers_[i].kind) {
        case LayerKind::Mamba: mamba_block(i, seq.layers[i], nb); break;
        case LayerKind::Attention: attention_block(i, seq.layers[i], nb, pos0); break;
        case LayerKind::Mlp: mlp(i, normed_, nb, up_, gate_, h_, /*accumulate=*/true); break;
      }
    }
    norm(-1, h_, nb, h_);
    mark("norm");
    seq.position += nb;
    if (sink) sink(b0, nb, h_);
    mark("block sink (lm_head, log-probs)");
  }
}

// --- Mamba ---------------------------------------------------------------------------

void DeviceModel::mamba_in_proj(int layer, const void* d_x, int64_t n, const MambaBuffers& b) {
  linear(d_x, act_dtype(), cfg_.hidden_size, n, layers_[layer].in_proj, b.proj, DType::F32, cfg_.in_proj_dim());
  mark("mamba in_proj GEMM");
}

void DeviceModel::mamba_scan(int layer, int64_t n, const float* d_history, const float* d_init, const MambaBuffers& b,
                             float* d_final, const int32_t* d_seq) {
  if (d_seq && (d_history || d_init || d_final))
    throw Error("internal: a packed Mamba scan starts every sequence from zeros and keeps no state");
  mamba_conv_dt(layer, n, d_history, b, d_seq);
  mamba_ssd(layer, n, d_init, b, d_final, d_seq);
}

void DeviceModel::mamba_conv_dt(int layer, int64_t n, const float* d_history, const MambaBuffers& b,
                                const int32_t* d_seq) {
  const ModelConfig& m = cfg_;
  const Layer& L = layers_[layer];
  const int64_t di = m.d_inner(), cd = m.conv_dim(), P = m.in_proj_dim(), H = m.mamba_heads;
  if (d_seq)
    k::causal_conv1d_varlen(b.proj + di, P, n, cd, d_seq, L.conv_w, L.conv_b, /*apply_silu=*/true, b.conv, stream_);
  else
    k::causal_conv1d(b.proj + di, P, n, cd, d_history, L.conv_w, L.conv_b, /*apply_silu=*/true, b.conv, stream_);
  k::dt_softplus(b.proj + di + cd, P, n, H, L.dt_bias, m.dt_min_limit, m.dt_max_limit, b.dt, stream_);
  mark("mamba conv1d + dt");
}

void DeviceModel::mamba_ssd(int layer, int64_t n, const float* d_init, const MambaBuffers& b, float* d_final,
                            const int32_t* d_seq, void* final_ready) {
  const ModelConfig& m = cfg_;
  const int64_t di = m.d_inner(), cd = m.conv_dim(), H = m.mamba_heads, GN = m.n_groups * m.ssm_state;
  const kernels::SsdShape s{n, H, m.mamba_head_dim, m.n_groups, m.ssm_state, m.chunk_size};
  // bf16 GEMM inputs: the scan's GEMM stages on the tensor cores too.
  const bool tensor_cores = gemm_ == GemmInputs::Bf16;
  const float* A = static_cast<const float*>(layers_[layer].A.data);
  if (d_seq)
    k::ssd_scan_varlen(s, b.conv, cd, b.dt, A, b.conv + di, cd, b.conv + di + GN, cd, d_seq, b.y, di, tensor_cores,
                       ssd_ws_, stream_);
  else
    k::ssd_scan_signal_final(s, b.conv, cd, b.dt, A, b.conv + di, cd, b.conv + di + GN, cd, d_init, b.y, di, d_final,
                             tensor_cores, final_ready, ssd_ws_, stream_);
  mark("mamba SSD scan");
}

const std::vector<float>& DeviceModel::mamba_A(int layer) const { return layers_[layer].A_host; }

void DeviceModel::mamba_segment_decay(int layer, int64_t n, const MambaBuffers& b, float* d_decay) {
  const ModelConfig& m = cfg_;
  const kernels::SsdShape s{n, m.mamba_heads, m.mamba_head_dim, m.n_groups, m.ssm_state, m.chunk_size};
  k::ssd_segment_decay(s, b.dt, static_cast<const float*>(layers_[layer].A.data), d_decay, stream_);
}

void DeviceModel::mamba_state_correction(int layer, int64_t n, const float* d_incoming, const MambaBuffers& b,
                                         const kernels::Workspace& ws) {
  const ModelConfig& m = cfg_;
  const int64_t di = m.d_inner(), cd = m.conv_dim(), GN = m.n_groups * m.ssm_state;
  const kernels::SsdShape s{n, m.mamba_heads, m.mamba_head_dim, m.n_groups, m.ssm_state, m.chunk_size};
  k::ssd_state_correction(s, b.dt, static_cast<const float*>(layers_[layer].A.data), b.conv + di + GN, cd, d_incoming,
                          b.y, di, nullptr, ws, stream_);
}

void DeviceModel::mamba_out(int layer, int64_t n, const MambaBuffers& b, float* d_out, bool accumulate) {
  const ModelConfig& m = cfg_;
  const Layer& L = layers_[layer];
  const int64_t di = m.d_inner(), cd = m.conv_dim(), P = m.in_proj_dim();
  k::head_scale_add(b.conv, cd, n, m.mamba_heads, m.mamba_head_dim, static_cast<const float*>(L.D.data), b.y, stream_);
  // The gated norm writes out_proj's input in the activation dtype into b.conv:
  // the post-conv x, B, C there are dead after the D skip (and a bf16 output
  // may not overlap its fp32 input y).
  k::gated_rmsnorm_to(b.y, b.proj, P, n, di, di / m.n_groups, L.norm_gated, m.norm_eps, b.conv, act_dtype(), stream_);
  mark("mamba D skip + gated norm");
  linear(b.conv, act_dtype(), di, n, L.out_proj, d_out, DType::F32, m.hidden_size, accumulate);
  mark("mamba out_proj GEMM");
}

// One block of a sequence on one device: the phases around its own cache.
void DeviceModel::mamba_block(int layer, DeviceLayerCache& c, int64_t n) {
  const ModelConfig& m = cfg_;
  const int64_t di = m.d_inner(), cd = m.conv_dim(), P = m.in_proj_dim(), K1 = m.conv_kernel - 1;
  float* hist = c.conv_history.as<float>();
  const MambaBuffers b{proj_, conv_, dt_, y_};
  mamba_in_proj(layer, normed_, n, b);
  // The state before the block in, the state after it out, in place
  // (cuda::ssd_scan allows init_state == final_state).
  mamba_scan(layer, n, hist, c.ssm_state.as<float>(), b, c.ssm_state.as<float>());
  // Conv history after the block: the last K-1 pre-conv rows of [history; block].
  if (K1 > 0) {
    const size_t row = cd * sizeof(float), pitch = P * sizeof(float);
    if (n >= K1) {
      cuda_check(cudaMemcpy2DAsync(hist, row, proj_ + (n - K1) * P + di, pitch, row, K1, cudaMemcpyDeviceToDevice, stream_),
                 "conv history");
    } else {
      cuda_check(cudaMemcpyAsync(hist_tmp_, hist + n * cd, (K1 - n) * row, cudaMemcpyDeviceToDevice, stream_),
                 "conv history");
      cuda_check(cudaMemcpy2DAsync(hist_tmp_ + (K1 - n) * cd, row, proj_ + di, pitch, row, n,
                                   cudaMemcpyDeviceToDevice, stream_),
                 "conv history");
      cuda_check(cudaMemcpyAsync(hist, hist_tmp_, K1 * row, cudaMemcpyDeviceToDevice, stream_), "conv history");
    }
  }
  mark("mamba conv history");
  mamba_out(layer, n, b, h_, /*accumulate=*/true);
}

// --- Attention -----------------------------------------------------------------------

void DeviceModel::attention_qkv(int layer, const void* d_x, int64_t n, int64_t pos0, float* d_qkv,
                                const int64_t* d_pos) {
  const ModelConfig& m = cfg_;
  const int64_t D = m.hidden_size, qd = m.num_heads * m.head_dim, W = qkv_dim();
  linear(d_x, act_dtype(), D, n, layers_[layer].qkv, d_qkv, DType::F32, W);
  if (m.rope && d_pos) {
    k::rope_at(d_qkv, W, n, m.num_heads, m.head_dim, m.rotary_dim, d_pos, m.rope_theta, stream_);
    k::rope_at(d_qkv + qd, W, n, m.num_kv_heads, m.head_dim, m.rotary_dim, d_pos, m.rope_theta, stream_);
  } else if (m.rope) {
    k::rope(d_qkv, W, n, m.num_heads, m.head_dim, m.rotary_dim, pos0, m.rope_theta, stream_);
    k::rope(d_qkv + qd, W, n, m.num_kv_heads, m.head_dim, m.rotary_dim, pos0, m.rope_theta, stream_);
  }
  mark("attention Q/K/V GEMM");
}

void DeviceModel::attention_output(int64_t n, const float* d_acc, const float* d_l, void* d_y) {
  const kernels::AttentionShape s{cfg_.num_heads, cfg_.num_kv_heads, cfg_.head_dim};
  k::attention_finalize_to(s, n, d_acc, d_l, d_y, cfg_.num_heads * cfg_.head_dim, act_dtype(), stream_);
}

void DeviceModel::attention_out(int layer, int64_t n, const void* d_y, float* d_out, bool accumulate) {
  linear(d_y, act_dtype(), cfg_.num_heads * cfg_.head_dim, n, layers_[layer].o, d_out, DType::F32, cfg_.hidden_size,
         accumulate);
  mark("attention o_proj GEMM");
}

void DeviceModel::attention_block(int layer, DeviceLayerCache& c, int64_t n, int64_t pos0) {
  const ModelConfig& m = cfg_;
  const int64_t qd = m.num_heads * m.head_dim, kvd = m.num_kv_heads * m.head_dim, W = qkv_dim();
  attention_qkv(layer, normed_, n, pos0, qkv_);
  if (c.kv_rows == 0) c.kv_pos0 = pos0;
  ensure_kv_capacity(c, c.kv_rows + n);
  // The block's k and v columns of qkv_ appended to the cache, in its dtype.
  const size_t es = dtype_size(c.kv_dtype);
  k::store_rows(qkv_ + qd, W, n, kvd, c.k.as<char>() + c.kv_rows * kvd * es, kvd, c.kv_dtype, stream_);
  k::store_rows(qkv_ + qd + kvd, W, n, kvd, c.v.as<char>() + c.kv_rows * kvd * es, kvd, c.kv_dtype, stream_);
  c.kv_rows += n;
  mark("attention KV append");

  const kernels::AttentionShape s{m.num_heads, m.num_kv_heads, m.head_dim};
  // Keys after the block's last query are masked anyway.
  const int64_t visible = std::min(c.kv_rows, pos0 + n - c.kv_pos0);
  k::attention_init(s, n, acc_, m_, l_, stream_);
  if (c.kv_dtype == DType::BF16) {
    // The tensor-core kernel takes q, k and v in one dtype and rounds fp32
    // ones to bf16 itself: the queries rounded here (into y_, free until the
    // output) give it the same inputs.
    k::store_rows(qkv_, W, n, qd, y_, qd, DType::BF16, stream_);
    const float scale = 1.0f / std::sqrt(static_cast<float>(m.head_dim));
    k::attention_block_mma(s, DType::BF16, y_, qd, n, pos0, c.k.get(), kvd, c.v.get(), kvd, visible, c.kv_pos0, scale,
                           /*causal=*/true, acc_, m_, l_, attn_ws_, stream_);
  } else {
    attention_fold(qkv_, W, n, pos0, c.k.as<float>(), c.v.as<float>(), kvd, visible, c.kv_pos0, acc_, m_, l_);
  }
  attention_output(n, acc_, l_, y_);
  mark("attention kernel");
  attention_out(layer, n, y_, h_, /*accumulate=*/true);
}

void DeviceModel::attention_fold(const float* d_q, int64_t ld_q, int64_t lq, int64_t q_pos0, const float* d_k,
                                 const float* d_v, int64_t ld_kv, int64_t lk, int64_t k_pos0, float* d_acc, float* d_m,
                                 float* d_l) {
  const kernels::AttentionShape s{cfg_.num_heads, cfg_.num_kv_heads, cfg_.head_dim};
  const float scale = 1.0f / std::sqrt(static_cast<float>(cfg_.head_dim));
  if (gemm_ == GemmInputs::Bf16)
    k::attention_block_mma(s, DType::F32, d_q, ld_q, lq, q_pos0, d_k, ld_kv, d_v, ld_kv, lk, k_pos0, scale,
                           /*causal=*/true, d_acc, d_m, d_l, attn_ws_, stream_);
  else
    k::attention_block(s, d_q, ld_q, lq, q_pos0, d_k, ld_kv, d_v, ld_kv, lk, k_pos0, scale, /*causal=*/true, d_acc,
                       d_m, d_l, stream_);
}

void DeviceModel::attention_fold_varlen(const float* d_qkv, int64_t n, const int32_t* d_seq, float* d_acc,
                                        float* d_m, float* d_l) {
  const kernels::AttentionShape s{cfg_.num_heads, cfg_.num_kv_heads, cfg_.head_dim};
  const float scale = 1.0f / std::sqrt(static_cast<float>(cfg_.head_dim));
  const int64_t qd = cfg_.num_heads * cfg_.head_dim, kvd = cfg_.num_kv_heads * cfg_.head_dim, W = qkv_dim();
  const float *q = d_qkv, *kk = d_qkv + qd, *v = d_qkv + qd + kvd;
  if (gemm_ == GemmInputs::Bf16)
    k::attention_varlen_mma(s, DType::F32, q, W, kk, W, v, W, n, d_seq, scale, /*causal=*/true, d_acc, d_m, d_l,
                            stream_);
  else
    k::attention_varlen(s, q, W, kk, W, v, W, n, d_seq, scale, /*causal=*/true, d_acc, d_m, d_l, stream_);
}

// --- MLP -----------------------------------------------------------------------------

void DeviceModel::mlp(int layer, const void* d_x, int64_t n, float* d_up, float* d_gate, float* d_out,
                      bool accumulate) {
  const Layer& L = layers_[layer];
  const int64_t D = cfg_.hidden_size, I = cfg_.intermediate_size;
  // relu^2's output feeds the down GEMM directly, so it stays in the
  // activation dtype (bf16: up writes it, relu^2 runs in place, down reads it);
  // SwiGLU's product is fp32.
  const bool relu2 = cfg_.mlp == MlpKind::Relu2;
  const DType inner = relu2 ? act_dtype() : DType::F32;
  linear(d_x, act_dtype(), D, n, L.up, d_up, inner, I);
  if (relu2) {
    if (inner == DType::BF16)
      k::relu_squared_bf16(d_up, n * I, stream_);
    else
      k::relu_squared(d_up, n * I, stream_);
  } else {
    linear(d_x, act_dtype(), D, n, L.gate, d_gate, DType::F32, I);
    k::silu_mul(d_gate, d_up, n * I, d_up, stream_);
  }
  mark("mlp up GEMM + activation");
  linear(d_up, inner, I, n, L.down, d_out, DType::F32, D, accumulate);
  mark("mlp down GEMM");
}

void DeviceModel::logits(const float* d_hidden, int64_t n, float* d_logits) {
  linear(d_hidden, DType::F32, cfg_.hidden_size, n, lm_head_, d_logits, DType::F32, cfg_.vocab_size);
}

std::vector<float> DeviceModel::logits_to_host(const float* d_hidden, int64_t n) {
  const int64_t D = cfg_.hidden_size, V = cfg_.vocab_size;
  std::vector<float> out(n * V);
  for (int64_t r0 = 0; r0 < n; r0 += logits_rows_) {
    const int64_t nr = std::min(logits_rows_, n - r0);
    logits(d_hidden + r0 * D, nr, logits_);
    cuda_check(cudaMemcpy(out.data() + r0 * V, logits_, nr * V * sizeof(float), cudaMemcpyDeviceToHost),
               "logits download");
  }
  return out;
}

void DeviceModel::sample(const float* d_hidden, int64_t n, const kernels::SamplingParams* params,
                         const uint64_t* stream, const uint64_t* step, int32_t* out) {
  static_assert(sizeof(kernels::cuda::SampleRow) == kSampleRowBytes, "memory_plan.h's kSampleRowBytes");
  const int64_t D = cfg_.hidden_size;
  for (int64_t r0 = 0; r0 < n; r0 += block_) {
    const int64_t nr = std::min(block_, n - r0);
    // The pinned rows may still feed the previous step's upload.
    cuda_check(cudaEventSynchronize(upload_done_->e), "waiting for the last table upload");
    auto* rows = table<kernels::cuda::SampleRow>(tables_.sample, 0, /*device=*/false);
    kernels::cuda::sample_prepare(params + r0, stream + r0, step + r0, nr, cfg_.vocab_size, rows);
    cuda_check(cudaMemcpyAsync(d_tables_ + tables_.sample, rows, nr * kSampleRowBytes, cudaMemcpyHostToDevice, stream_),
               "sampling rows upload");
    cuda_check(cudaEventRecord(upload_done_->e, stream_), "recording the table upload");
    enqueue_sample(d_hidden + r0 * D, nr);
    cuda_check(cudaStreamSynchronize(stream_), "sampling");
    std::copy(h_out_ids_, h_out_ids_ + nr, out + r0);
  }
}

void DeviceModel::target_logprobs(const float* d_hidden, int64_t n, const int32_t* targets, float* out) {
  const int64_t D = cfg_.hidden_size, V = cfg_.vocab_size;
  for (int64_t r0 = 0; r0 < n; r0 += logits_rows_) {
    const int64_t nr = std::min(logits_rows_, n - r0);
    for (int64_t i = 0; i < nr; ++i)
      if (targets[r0 + i] < 0 || targets[r0 + i] >= V)
        throw Error("target token id " + std::to_string(targets[r0 + i]) + " is outside the vocabulary");
    logits(d_hidden + r0 * D, nr, logits_);
    cuda_check(cudaMemcpy(targets_, targets + r0, nr * sizeof(int32_t), cudaMemcpyHostToDevice), "targets upload");
    k::token_log_prob(logits_, nr, V, targets_, logprob_, stream_);
    cuda_check(cudaMemcpy(out + r0, logprob_, nr * sizeof(float), cudaMemcpyDeviceToHost), "log-prob download");
  }
}

}  // namespace ringscan
