#include "model/memory_plan.h"

#include <algorithm>
#include <cstdio>

#include "kernels/attention_decode.h"
#include "kernels/ssd_scan.h"
#include "model/presets.h"

namespace ringscan {

uint64_t kv_bytes_per_token(const ModelConfig& c, int elem_bytes) {
  return static_cast<uint64_t>(c.count(LayerKind::Attention)) * 2 * c.num_kv_heads * c.head_dim * elem_bytes;
}

uint64_t ssm_state_bytes_per_layer(const ModelConfig& c) {
  return static_cast<uint64_t>(c.ssm_state_elems() + c.conv_history_elems()) * 4;
}

MemoryPlan plan_memory(const ModelConfig& c, uint64_t weight_bytes, int64_t tokens, int ranks, int64_t block_tokens) {
  MemoryPlan p;
  ranks = std::max(ranks, 1);
  p.tokens_per_rank = (tokens + ranks - 1) / ranks;
  const uint64_t T = static_cast<uint64_t>(p.tokens_per_rank);
  // One rank prefills in blocks; a sequence-parallel segment is processed whole.
  const uint64_t B = ranks > 1 ? T : static_cast<uint64_t>(std::min<int64_t>(block_tokens, p.tokens_per_rank));
  p.weight_bytes = weight_bytes;
  p.residual_bytes = T * c.hidden_size * 4;
  p.kv_cache_bytes = T * kv_bytes_per_token(c);
  p.ssm_state_bytes = c.count(LayerKind::Mamba) * ssm_state_bytes_per_layer(c);
  // Per block: normed input + mixer output, plus the widest mixer's buffers.
  const uint64_t mamba = c.count(LayerKind::Mamba) ? c.in_proj_dim() + c.conv_dim() + c.d_inner() + c.mamba_heads : 0;
  const uint64_t attn = c.count(LayerKind::Attention) ? 2 * c.num_heads * c.head_dim + 2 * c.num_kv_heads * c.head_dim : 0;
  const uint64_t mlp = c.count(LayerKind::Mlp) ? (c.mlp == MlpKind::SwiGlu ? 2 : 1) * c.intermediate_size : 0;
  p.workspace_bytes = B * (2 * c.hidden_size + std::max({mamba, attn, mlp})) * 4;
  if (ranks > 1) {
    // Ring attention holds its own block and two to receive into (one being
    // folded while the next arrives).
    p.sequence_parallel_bytes = 3 * T * 2 * c.num_kv_heads * c.head_dim * 4 + 2 * ssm_state_bytes_per_layer(c);
  }
  return p;
}

namespace {
// The largest decode attention workspace of any batch up to B (the split
// count falls as the batch grows, so the product is not monotone).
int64_t decode_attention_ws(const ModelConfig& c, int64_t B) {
  const kernels::AttentionShape s{c.num_heads, c.num_kv_heads, c.head_dim};
  size_t most = 0;
  for (int64_t b = 1; b <= B; ++b) most = std::max(most, kernels::attention_decode_workspace(s, b));
  return static_cast<int64_t>(most);
}
}  // namespace

DecodeTableLayout decode_table_layout(const ModelConfig& c, int64_t rows) {
  DecodeTableLayout t;
  t.rows = rows;
  const uint64_t R = static_cast<uint64_t>(std::max<int64_t>(rows, 1));
  const uint64_t M = c.count(LayerKind::Mamba), A = c.count(LayerKind::Attention);
  uint64_t off = 0;
  auto take = [&](uint64_t bytes) {
    const uint64_t at = off;
    off += (std::max<uint64_t>(bytes, 4) + 255) / 256 * 256;
    return at;
  };
  t.ids = take(R * 4);
  t.pos = take(R * 8);
  t.conv_hist = take(M * R * 8);
  t.ssm_state = take(M * R * 8);
  t.kv_k = take(A * R * 8);
  t.kv_v = take(A * R * 8);
  t.kv_row = take(A * R * 4);
  t.kv_len = take(A * R * 4);
  t.sample = take(R * kSampleRowBytes);
  t.bytes = off;
  return t;
}

DeviceArena device_arena(const ModelConfig& c, int64_t block) {
  DeviceArena a;
  const int64_t B = a.block = block, D = c.hidden_size;
  const bool mamba = c.count(LayerKind::Mamba) > 0, attn = c.count(LayerKind::Attention) > 0;
  const int64_t qd = attn ? c.num_heads * c.head_dim : 0, kvd = attn ? c.num_kv_heads * c.head_dim : 0;
  const int64_t I = c.count(LayerKind::Mlp) ? c.intermediate_size : 0;
  // Logits rows at once: 256 MiB of fp32 logits at most, at least one row.
  a.logits_rows = std::clamp<int64_t>((int64_t{256} << 20) / (c.vocab_size * 4), 1, B);
  a.h = a.normed = B * D;  // mixers add into h in their last GEMM: no separate output
  a.proj = mamba ? B * c.in_proj_dim() : 0;
  a.conv = mamba ? B * c.conv_dim() : 0;
  a.dt = mamba ? B * c.mamba_heads : 0;
  a.y = B * std::max(mamba ? c.d_inner() : 0, qd);
  a.acc = B * qd;
  a.qkv = B * (qd + 2 * kvd);  // one fused Q/K/V GEMM's rows
  a.m = a.l = attn ? B * c.num_heads : 0;
  a.up = B * I;
  a.gate = c.mlp == MlpKind::Relu2 ? 0 : B * I;
  a.hist_tmp = mamba ? std::max<int64_t>(1, c.conv_kernel - 1) * c.conv_dim() : 0;
  a.logits = a.logits_rows * c.vocab_size;
  a.logprob = a.targets = a.logits_rows;
  a.ids = a.seq = B;
  a.pos = c.rope ? B : 0;
  a.decode_tables = static_cast<int64_t>(decode_table_layout(c, B).bytes) + (B * 4 + 255) / 256 * 256;  // + the ids drawn
  a.attn_decode_ws = attn ? decode_attention_ws(c, B) : 0;
  // Partials (acc, m, l) of up to 64 key splits of a block's queries, capped
  // at 4 MiB: splits only happen for short query blocks, and with less room
  // the kernel splits less (kernels/attention.h).
  a.attn_ws = attn ? std::min<int64_t>(int64_t{64} * B * c.num_heads * (c.head_dim + 2) * 4, int64_t{4} << 20) : 0;
  // The widest fp32 GEMM input of a block, rounded to bf16 (the others are
  // written bf16 by the ops that make them): the attention output, the final
  // hidden states (lm_head), SwiGLU's product.
  a.gemm_ws = B * std::max({qd, D, c.mlp == MlpKind::Relu2 ? 0 : I}) * 2;
  if (mamba) {
    const kernels::SsdShape s{B, c.mamba_heads, c.mamba_head_dim, c.n_groups, c.ssm_state, c.chunk_size};
    // With the carried state: a longer scan (a sequence-parallel segment) goes
    // in passes of the same chunks.
    const int64_t chunks = kernels::ssd_scan_chunks_per_pass(s, kernels::kSsdPassScratchBytes);
    a.ssd_ws = static_cast<int64_t>(kernels::ssd_scan_scratch(s, chunks, true).bytes);
  }
  return a;
}

uint64_t DeviceArena::bytes() const {
  auto al = [](int64_t n, int64_t size) { return (static_cast<uint64_t>(std::max<int64_t>(n * size, 4)) + 255) / 256 * 256; };
  uint64_t b = 0;
  for (int64_t f : {h, normed, proj, conv, dt, y, qkv, acc, m, l, up, gate, hist_tmp, logits, logprob})
    b += al(f, 4);
  return b + al(targets, 4) + al(ids, 4) + al(seq, 4) + al(pos, 8) + al(decode_tables, 1) + al(attn_decode_ws, 1) + al(attn_ws, 1) + al(gemm_ws, 1) + al(ssd_ws, 1);
}

DeviceMemoryPlan plan_device_memory(const ModelConfig& c, int64_t tokens, int ranks, int64_t block_tokens) {
  DeviceMemoryPlan p;
  ranks = std::max(ranks, 1);
  p.tokens_per_rank = (tokens + ranks - 1) / ranks;
  const uint64_t T = static_cast<uint64_t>(p.tokens_per_rank), D = c.hidden_size;
  const bool mamba = c.count(LayerKind::Mamba) > 0, attn = c.count(LayerKind::Attention) > 0;
  const uint64_t qd = attn ? c.num_heads * c.head_dim : 0, kvd = attn ? c.num_kv_heads * c.head_dim : 0;
  const uint64_t H = mamba ? c.mamba_heads : 0, di = mamba ? c.d_inner() : 0;
  p.weight_bytes = static_cast<uint64_t>(parameter_count(c)) * 2;
  p.arena_bytes = device_arena(c, block_tokens).bytes();
  // The GPU engine's default KV cache is bf16 (DeviceModelOptions::kv_cache).
  p.kv_cache_bytes = T * kv_bytes_per_token(c, 2);
  p.ssm_state_bytes = c.count(LayerKind::Mamba) * ssm_state_bytes_per_layer(c);
  // GEMM inputs rounded to bf16 and the SSD scan's scratch come from the
  // arena, a block's worth at a time (longer calls go in passes). Outside it:
  // the state correction's cumulative decays (sequence parallelism).
  p.scratch_bytes = mamba ? T * H * 12 : 0;
  if (ranks > 1) {
    // Per token of the rank's segments: the residual stream, the Mamba phase
    // buffers and queries kept across the exchanges, the normed input (mixers
    // add into the residual stream), the attention state, this rank's K/V
    // block and a received one.
    const uint64_t per_token = D + (mamba ? c.in_proj_dim() + c.conv_dim() + H : 0) + std::max(di, qd) +
                               (qd + 2 * kvd) + D + qd + 2 * (attn ? c.num_heads : 0) + 3 * 2 * kvd;
    p.sequence_parallel_bytes = T * per_token * 4;
    p.kv_cache_bytes = 0;  // the runner holds K/V only as the blocks above
  }
  return p;
}

std::string human_bytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f %s", v, units[u]);
  return buf;
}

}  // namespace ringscan
