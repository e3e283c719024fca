// DeviceModel's decode: one new token for each of a batch of sequences, as a
// fixed set of launches over the whole batch (model/decode_step.cpp is the
// CPU twin). Norms, projections and MLPs run on the rows as one matrix; the
// conv update, the SSM step, the KV append and attention reach each
// sequence's own state through pointer arrays. Everything that differs from
// step to step (ids, positions, state and cache pointers, cache rows,
// sampling rows) is one table, filled on the host in pinned memory and
// uploaded with one asynchronous copy: the step's launches themselves never
// change for a batch size, so the step is captured once as a CUDA graph and
// replayed (decode_and_sample). Nothing in a step allocates, frees or
// synchronises, except reading the ids drawn at its end.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/activations.h"
#include "kernels/attention.h"
#include "kernels/attention_decode.h"
#include "kernels/causal_conv1d.h"
#include "kernels/embedding.h"
#include "kernels/kv_append.h"
#include "kernels/rope.h"
#include "kernels/sampling.h"
#include "kernels/ssd_step.h"
#include "model/cuda/device_model_impl.h"

namespace ringscan {

namespace k = kernels::cuda;

int64_t DeviceModel::decode_graph_size(int64_t n) const {
  int64_t r = n <= 8 ? std::max<int64_t>(1, std::bit_ceil(static_cast<uint64_t>(n))) : (n + 7) / 8 * 8;
  return std::min(r, block_);
}

void DeviceModel::prepare_decode(const int32_t* ids, int64_t n, int64_t rows, DeviceSequence* const* seqs) {
  if (n < 1 || n > block_)
    throw Error("decode batch of " + std::to_string(n) + " sequences: the GPU engine takes 1.." +
                std::to_string(block_) + " at once");
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= cfg_.vocab_size)
      throw Error("token id " + std::to_string(ids[i]) + " of decode sequence " + std::to_string(i) +
                  " is outside the model's vocabulary (0.." + std::to_string(cfg_.vocab_size - 1) + ")");
    // The steps update each state in place: one sequence twice in a batch would race.
    for (int64_t j = 0; j < i; ++j)
      if (seqs[j] == seqs[i])
        throw Error("decode step: sequence " + std::to_string(i) + " is also sequence " + std::to_string(j) +
                    " of the same batch");
    init_caches(*seqs[i]);
    for (size_t li = 0; li < layers_.size() && !decode_attend_; ++li) {
      DeviceLayerCache& c = seqs[i]->layers[li];
      if (layers_[li].kind != LayerKind::Attention) continue;
      if (c.kv_rows > 0 && c.kv_pos0 + c.kv_rows != seqs[i]->position)
        throw Error("decode step: sequence " + std::to_string(i) + " is at position " +
                    std::to_string(seqs[i]->position) + " but its KV cache ends at " +
                    std::to_string(c.kv_pos0 + c.kv_rows));
      if (c.kv_dtype != kv_dtype_)
        throw Error("decode step: sequence " + std::to_string(i) + " has a " + dtype_name(c.kv_dtype) +
                    " KV cache, the engine " + dtype_name(kv_dtype_));
      if (c.kv_rows + 1 > 0x7fffffff) throw Error("decode step: a KV cache past 2^31 rows");
      ensure_kv_capacity(c, c.kv_rows + 1);  // may reallocate (and wait): before the step is queued
    }
  }
  // The pinned tables may still feed the previous step's upload.
  cuda_check(cudaEventSynchronize(upload_done_->e), "waiting for the last table upload");
  for (int64_t r = 0; r < rows; ++r) {
    const bool real = r < n;
    table<int32_t>(tables_.ids, 0, false)[r] = real ? ids[r] : 0;
    table<int64_t>(tables_.pos, 0, false)[r] = real ? seqs[r]->position : 0;
    int mi = 0, ai = 0;
    for (size_t li = 0; li < layers_.size(); ++li) {
      DeviceLayerCache* c = real ? &seqs[r]->layers[li] : nullptr;
      if (layers_[li].kind == LayerKind::Mamba) {
        // Null pointers: a padding row, which the kernels skip.
        table<float*>(tables_.conv_hist, mi, false)[r] = c ? c->conv_history.as<float>() : nullptr;
        table<float*>(tables_.ssm_state, mi, false)[r] = c ? c->ssm_state.as<float>() : nullptr;
        ++mi;
      } else if (layers_[li].kind == LayerKind::Attention) {
        if (decode_attend_) c = nullptr;  // the attention hook owns the caches
        if (c && c->kv_rows == 0) c->kv_pos0 = seqs[r]->position;
        table<void*>(tables_.kv_k, ai, false)[r] = c ? c->k.get() : nullptr;
        table<void*>(tables_.kv_v, ai, false)[r] = c ? c->v.get() : nullptr;
        table<int32_t>(tables_.kv_row, ai, false)[r] = c ? static_cast<int32_t>(c->kv_rows) : 0;
        table<int32_t>(tables_.kv_len, ai, false)[r] = c ? static_cast<int32_t>(c->kv_rows + 1) : 0;
        ++ai;
      }
    }
  }
  // Padding rows draw greedily (their ids are dropped).
  auto* sr = table<k::SampleRow>(tables_.sample, 0, false);
  for (int64_t r = n; r < rows; ++r) sr[r] = k::SampleRow{0.0, 0.0, 1.0, 0, 1, 0, 0};
}

// After the step is queued: the host's view of the sequences moves on.
void DeviceModel::finish_decode(int64_t n, DeviceSequence* const* seqs) {
  for (int64_t i = 0; i < n; ++i) {
    for (size_t li = 0; li < layers_.size(); ++li)
      if (layers_[li].kind == LayerKind::Attention) ++seqs[i]->layers[li].kv_rows;
    ++seqs[i]->position;
  }
}

void DeviceModel::enqueue_decode(int64_t rows, bool sample) {
  // One copy of the whole table (its unused rows too: ~0.5 KB a row).
  cuda_check(cudaMemcpyAsync(d_tables_, h_tables_, tables_.bytes, cudaMemcpyHostToDevice, stream_), "table upload");
  k::embedding(embeddings_, table<int32_t>(tables_.ids), rows, h_, stream_);
  int mi = 0, ai = 0;
  for (int li = 0; li < static_cast<int>(layers_.size()); ++li) {
    norm(li, h_, rows, normed_);
    switch (layers_[li].kind) {
      case LayerKind::Mamba: mamba_decode(li, mi++, rows); break;
      case LayerKind::Attention: attention_decode(li, ai++, rows); break;
      case LayerKind::Mlp: mlp(li, normed_, rows, up_, gate_, h_, /*accumulate=*/true); break;
    }
  }
  norm(-1, h_, rows, h_);
  if (sample) enqueue_sample(h_, rows);
}

// lm_head in blocks of logits_rows_, each block's draw, then the ids to pinned memory.
void DeviceModel::enqueue_sample(const float* d_hidden, int64_t rows) {
  const int64_t D = cfg_.hidden_size, V = cfg_.vocab_size;
  for (int64_t r0 = 0; r0 < rows; r0 += logits_rows_) {
    const int64_t nr = std::min(logits_rows_, rows - r0);
    logits(d_hidden + r0 * D, nr, logits_);
    k::sample_rows(logits_, V, nr, V, table<k::SampleRow>(tables_.sample) + r0, d_out_ids_ + r0, stream_);
  }
  cuda_check(cudaMemcpyAsync(h_out_ids_, d_out_ids_, rows * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_),
             "ids download");
}

const float* DeviceModel::decode_step(const int32_t* ids, int64_t n, DeviceSequence* const* seqs) {
  prepare_decode(ids, n, n, seqs);
  enqueue_decode(n, /*sample=*/false);
  cuda_check(cudaEventRecord(upload_done_->e, stream_), "recording the table upload");
  finish_decode(n, seqs);
  return h_;
}

const float* DeviceModel::decode_step(const int32_t* ids, int64_t n, DeviceSequence* const* seqs,
                                      const DecodeAttention& attend) {
  decode_attend_ = &attend;
  try {
    prepare_decode(ids, n, n, seqs);
    enqueue_decode(n, /*sample=*/false);
  } catch (...) {
    decode_attend_ = nullptr;
    throw;
  }
  decode_attend_ = nullptr;
  cuda_check(cudaEventRecord(upload_done_->e, stream_), "recording the table upload");
  for (int64_t i = 0; i < n; ++i) ++seqs[i]->position;
  return h_;
}

void DeviceModel::decode_and_sample(const int32_t* ids, int64_t n, DeviceSequence* const* seqs,
                                    const kernels::SamplingParams* params, const uint64_t* stream,
                                    const uint64_t* step, int32_t* out) {
  const int64_t rows = decode_graphs_ ? decode_graph_size(n) : n;
  prepare_decode(ids, n, rows, seqs);
  k::sample_prepare(params, stream, step, n, cfg_.vocab_size, table<k::SampleRow>(tables_.sample, 0, false));
  if (decode_graphs_)
    run_decode_graph(rows);
  else
    enqueue_decode(rows, /*sample=*/true);
  cuda_check(cudaEventRecord(upload_done_->e, stream_), "recording the table upload");
  finish_decode(n, seqs);
  cuda_check(cudaStreamSynchronize(stream_), "decode step");  // the one wait: the ids
  std::copy(h_out_ids_, h_out_ids_ + n, out);
}

void DeviceModel::run_decode_graph(int64_t rows) {
  Graph* g = nullptr;
  for (auto& e : graphs_)
    if (e->rows == rows) g = e.get();
  if (!g) {
    if (static_cast<int>(graphs_.size()) >= graph_cache_) {  // evict the least recently used
      auto lru = std::min_element(graphs_.begin(), graphs_.end(),
                                  [](const auto& a, const auto& b) { return a->last_use < b->last_use; });
      graphs_.erase(lru);
    }
    auto fresh = std::make_unique<Graph>();
    fresh->rows = rows;
    cudaGraph_t graph = nullptr;
    cuda_check(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeGlobal), "beginning a decode graph capture");
    capturing_ = true;
    try {
      enqueue_decode(rows, /*sample=*/true);
    } catch (...) {
      capturing_ = false;
      cudaStreamEndCapture(stream_, &graph);
      if (graph) cudaGraphDestroy(graph);
      throw;
    }
    capturing_ = false;
    cuda_check(cudaStreamEndCapture(stream_, &graph), "capturing the decode step");
    const cudaError_t e = cudaGraphInstantiate(&fresh->exec, graph, 0);
    cudaGraphDestroy(graph);
    cuda_check(e, "instantiating the decode graph");
    ++graphs_captured_;
    graphs_.push_back(std::move(fresh));
    g = graphs_.back().get();
  }
  g->last_use = ++graph_clock_;
  cuda_check(cudaGraphLaunch(g->exec, stream_), "launching the decode graph");
}

void DeviceModel::mamba_decode(int layer, int mamba_index, int64_t rows) {
  const ModelConfig& m = cfg_;
  const Layer& L = layers_[layer];
  const int64_t di = m.d_inner(), cd = m.conv_dim(), P = m.in_proj_dim(), H = m.mamba_heads;
  const int64_t GN = m.n_groups * m.ssm_state;
  const MambaBuffers b{proj_, conv_, dt_, y_};
  mamba_in_proj(layer, normed_, rows, b);
  // Every sequence's conv over its own history, which moves on by the token.
  k::causal_conv1d_update(proj_ + di, P, rows, cd, table<float*>(tables_.conv_hist, mamba_index), L.conv_w, L.conv_b,
                          /*apply_silu=*/true, conv_, stream_);
  k::dt_softplus(proj_ + di + cd, P, rows, H, L.dt_bias, m.dt_min_limit, m.dt_max_limit, dt_, stream_);
  const kernels::SsdShape s{rows, H, m.mamba_head_dim, m.n_groups, m.ssm_state, m.chunk_size};
  k::ssd_step(s, conv_, cd, dt_, static_cast<const float*>(L.A.data), conv_ + di, cd, conv_ + di + GN, cd,
              table<float*>(tables_.ssm_state, mamba_index), y_, di, stream_);
  mamba_out(layer, rows, b, h_, /*accumulate=*/true);
}

void DeviceModel::attention_decode(int layer, int attn_index, int64_t rows) {
  const ModelConfig& m = cfg_;
  const int64_t D = m.hidden_size, qd = m.num_heads * m.head_dim, kvd = m.num_kv_heads * m.head_dim, W = qkv_dim();
  linear(normed_, act_dtype(), D, rows, layers_[layer].qkv, qkv_, DType::F32, W);
  if (m.rope) {  // each row at its own sequence's position
    const int64_t* pos = table<int64_t>(tables_.pos);
    k::rope_at(qkv_, W, rows, m.num_heads, m.head_dim, m.rotary_dim, pos, m.rope_theta, stream_);
    k::rope_at(qkv_ + qd, W, rows, m.num_kv_heads, m.head_dim, m.rotary_dim, pos, m.rope_theta, stream_);
  }
  if (decode_attend_) {
    (*decode_attend_)(layer, rows, qkv_, W, acc_, m_, l_);
  } else {
    void* const* kc = table<void*>(tables_.kv_k, attn_index);
    void* const* vc = table<void*>(tables_.kv_v, attn_index);
    k::kv_append(qkv_ + qd, qkv_ + qd + kvd, W, rows, kvd, kc, vc, table<int32_t>(tables_.kv_row, attn_index),
                 kv_dtype_, stream_);
    const kernels::AttentionShape s{m.num_heads, m.num_kv_heads, m.head_dim};
    const float scale = 1.0f / std::sqrt(static_cast<float>(m.head_dim));
    k::attention_decode(s, qkv_, W, rows, kc, vc, kv_dtype_, table<int32_t>(tables_.kv_len, attn_index), scale, acc_,
                        m_, l_, attn_decode_ws_, stream_);
  }
  attention_output(rows, acc_, l_, y_);
  attention_out(layer, rows, y_, h_, /*accumulate=*/true);
}

}  // namespace ringscan
