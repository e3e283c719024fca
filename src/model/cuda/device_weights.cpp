// Uploading the weights and laying out the activation arena of a DeviceModel.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <utility>

#include "model/cuda/device_model_impl.h"
#include "model/memory_plan.h"
#include "util/error.h"

namespace ringscan {
namespace {

constexpr uint64_t kAlign = 256;  // cuBLAS and vector loads like aligned operands
uint64_t aligned(uint64_t b) { return (b + kAlign - 1) / kAlign * kAlign; }

// One tensor to place in the weight buffer.
struct Upload {
  const WeightView* src;  // host view (null for fp32 vectors computed here)
  WeightView* dst;
  DType dtype;             // stored dtype on the device
  std::vector<float> values;  // host fp32 values when src is null
  uint64_t offset = 0;
  bool follows_prev = false;  // placed right after the previous upload, no padding (fused q | k | v)
};

// Host elements [i0, i0 + n) of `src` as `dtype` into dst (panels, so a large
// F32 tensor is never converted whole).
void convert_panel(const WeightView& src, int64_t i0, int64_t n, DType dtype, std::vector<uint8_t>& dst) {
  std::vector<float> f(n);
  src.to_f32(i0, n, f.data());
  dst.resize(n * dtype_size(dtype));
  if (dtype == DType::F32) {
    std::copy(f.begin(), f.end(), reinterpret_cast<float*>(dst.data()));
  } else {
    auto* o = reinterpret_cast<uint16_t*>(dst.data());
    for (int64_t i = 0; i < n; ++i) o[i] = dtype == DType::BF16 ? f32_to_bf16(f[i]) : f32_to_f16(f[i]);
  }
}

void copy_to_device(void* d, const void* h, uint64_t bytes) {
  const cudaError_t e = cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice);
  if (e != cudaSuccess) throw Error(std::string("uploading weights to the GPU failed: ") + cudaGetErrorString(e));
}

}  // namespace

void DeviceModel::upload_weights(const Model& host) {
  const ModelConfig& c = cfg_;
  const ModelWeights& w = host.weights();
  std::vector<Upload> ups;
  // GEMM weights go to the tensor cores as bf16 in Bf16 mode; everything else
  // keeps its stored dtype (the kernels read any).
  auto add = [&](const WeightView& src, WeightView& dst, bool gemm) {
    if (src.empty()) return;
    const DType d = gemm && gemm_ == GemmInputs::Bf16 ? DType::BF16 : src.dtype;
    ups.push_back({&src, &dst, d, {}, 0});
  };
  auto add_f32 = [&](std::vector<float> v, WeightView& dst) {
    ups.push_back({nullptr, &dst, DType::F32, std::move(v), 0});
  };
  layers_.resize(c.layers.size());
  for (size_t i = 0; i < c.layers.size(); ++i) {
    const LayerWeights& hl = w.layers[i];
    Layer& L = layers_[i];
    L.kind = hl.kind;
    add(hl.norm, L.norm, false);
    if (hl.kind == LayerKind::Mamba) {
      add(hl.mamba.in_proj, L.in_proj, true);
      add(hl.mamba.conv_w, L.conv_w, false);
      add(hl.mamba.conv_b, L.conv_b, false);
      add(hl.mamba.dt_bias, L.dt_bias, false);
      add(hl.mamba.norm, L.norm_gated, false);
      add(hl.mamba.out_proj, L.out_proj, true);
      // A = -exp(A_log) and D as fp32 vectors, computed once on the host as the CPU engine does.
      std::vector<float> A(c.mamba_heads), D(c.mamba_heads);
      for (int64_t h = 0; h < c.mamba_heads; ++h) {
        A[h] = -std::exp(hl.mamba.A_log.at(h));
        D[h] = hl.mamba.D.at(h);
      }
      L.A_host = A;
      add_f32(std::move(A), L.A);
      add_f32(std::move(D), L.D);
    } else if (hl.kind == LayerKind::Attention) {
      // q, k and v back to back: together the rows of one [q + 2 kv, hidden]
      // matrix (L.qkv, set below), so the projections are one GEMM.
      add(hl.attn.q, L.q, true);
      add(hl.attn.k, L.k, true);
      ups.back().follows_prev = true;
      add(hl.attn.v, L.v, true);
      ups.back().follows_prev = true;
      const Upload& uq = ups[ups.size() - 3];
      if (uq.dtype != ups[ups.size() - 2].dtype || uq.dtype != ups.back().dtype)
        throw Error("attention layer " + std::to_string(i) + ": the q, k and v weights have different dtypes (" +
                    dtype_name(hl.attn.q.dtype) + ", " + dtype_name(hl.attn.k.dtype) + ", " +
                    dtype_name(hl.attn.v.dtype) + "); the GPU engine stores them as one matrix");
      add(hl.attn.o, L.o, true);
    } else {
      add(hl.mlp.gate, L.gate, true);
      add(hl.mlp.up, L.up, true);
      add(hl.mlp.down, L.down, true);
    }
  }
  add(w.embeddings, embeddings_, false);
  add(w.norm_f, norm_f_, false);
  add(w.lm_head, lm_head_, true);

  // Offsets; a tied lm_head (same host data, same device dtype) shares the embedding's copy.
  std::map<std::pair<const void*, DType>, size_t> first;
  uint64_t total = 0;
  std::vector<size_t> owner(ups.size());
  for (size_t u = 0; u < ups.size(); ++u) {
    owner[u] = u;
    if (ups[u].src) {
      auto [it, fresh] = first.emplace(std::make_pair(ups[u].src->data, ups[u].dtype), u);
      if (!fresh) { owner[u] = it->second; continue; }
    }
    const int64_t numel = ups[u].src ? ups[u].src->numel() : static_cast<int64_t>(ups[u].values.size());
    ups[u].offset = total;
    const uint64_t bytes = static_cast<uint64_t>(numel) * dtype_size(ups[u].dtype);
    const bool next_follows = u + 1 < ups.size() && ups[u + 1].follows_prev;
    total += next_follows ? bytes : aligned(bytes);
  }
  weights_ = DeviceBuffer(total, "the model's weights");

  std::vector<uint8_t> panel;
  constexpr int64_t kPanel = int64_t{8} << 20;  // elements converted at a time
  for (size_t u = 0; u < ups.size(); ++u) {
    const Upload& o = ups[owner[u]];
    char* base = weights_.as<char>() + o.offset;
    const WeightView* s = ups[u].src;
    *ups[u].dst = WeightView{o.dtype, base, s ? s->rows : 1, s ? s->cols : static_cast<int64_t>(o.values.size())};
    if (owner[u] != u) continue;
    if (!s) {
      copy_to_device(base, o.values.data(), o.values.size() * sizeof(float));
    } else if (s->dtype == o.dtype) {
      copy_to_device(base, s->data, static_cast<uint64_t>(s->numel()) * dtype_size(o.dtype));
    } else {
      for (int64_t i0 = 0; i0 < s->numel(); i0 += kPanel) {
        const int64_t n = std::min(kPanel, s->numel() - i0);
        convert_panel(*s, i0, n, o.dtype, panel);
        copy_to_device(base + i0 * dtype_size(o.dtype), panel.data(), panel.size());
      }
    }
  }
  for (Layer& L : layers_)
    if (L.kind == LayerKind::Attention) L.qkv = WeightView{L.q.dtype, L.q.data, L.q.rows + L.k.rows + L.v.rows, L.q.cols};
}

void DeviceModel::layout_arena() {
  // The sizes come from the memory plan (model/memory_plan.h), so `info` and
  // the scheduler count exactly what is allocated here.
  const DeviceArena a = device_arena(cfg_, block_);
  logits_rows_ = a.logits_rows;
  struct Slot {
    void** p;
    uint64_t bytes;
  };
  auto f = [](float*& p, int64_t elems) { return Slot{reinterpret_cast<void**>(&p), uint64_t(elems) * 4}; };
  const Slot slots[] = {f(h_, a.h),         f(normed_, a.normed), f(proj_, a.proj),
                        f(conv_, a.conv),   f(dt_, a.dt),         f(y_, a.y),         f(qkv_, a.qkv),
                        f(acc_, a.acc),     f(m_, a.m),
                        f(l_, a.l),         f(up_, a.up),         f(gate_, a.gate),   f(hist_tmp_, a.hist_tmp),
                        f(logits_, a.logits), f(logprob_, a.logprob),
                        {reinterpret_cast<void**>(&targets_), uint64_t(a.targets) * 4},
                        {reinterpret_cast<void**>(&ids_), uint64_t(a.ids) * 4},
                        {reinterpret_cast<void**>(&seq_), uint64_t(a.seq) * 4},
                        {reinterpret_cast<void**>(&pos_), uint64_t(a.pos) * 8},
                        {reinterpret_cast<void**>(&d_tables_), uint64_t(a.decode_tables)},
                        {&attn_decode_ws_.data, uint64_t(a.attn_decode_ws)},
                        {&attn_ws_.data, uint64_t(a.attn_ws)},
                        {&gemm_ws_.data, uint64_t(a.gemm_ws)},
                        {&ssd_ws_.data, uint64_t(a.ssd_ws)}};
  attn_ws_.bytes = uint64_t(a.attn_ws);
  gemm_ws_.bytes = uint64_t(a.gemm_ws);
  ssd_ws_.bytes = uint64_t(a.ssd_ws);
  attn_decode_ws_.bytes = uint64_t(a.attn_decode_ws);
  arena_ = DeviceBuffer(a.bytes(), "the activation arena (" + std::to_string(block_) + "-token blocks)");
  uint64_t off = 0;
  for (const Slot& s : slots) {
    *s.p = arena_.as<char>() + off;
    off += aligned(std::max<uint64_t>(s.bytes, 4));
  }
  // The decode tables' host side, pinned so that their upload is an
  // asynchronous copy a graph can hold; the ids drawn come back after them.
  tables_ = decode_table_layout(cfg_, block_);
  d_out_ids_ = reinterpret_cast<int32_t*>(d_tables_ + tables_.bytes);
  void* pinned = nullptr;
  cuda_check(cudaMallocHost(&pinned, tables_.bytes + uint64_t(block_) * 4), "pinned decode tables");
  h_tables_ = static_cast<char*>(pinned);
  h_out_ids_ = reinterpret_cast<int32_t*>(h_tables_ + tables_.bytes);
}

}  // namespace ringscan
