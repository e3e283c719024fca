// The model on one GPU (CUDA builds only; DESIGN §3): weights uploaded once,
// activations in one preallocated arena sized for a block of tokens, Mamba
// states and attention statistics in fp32. The same computation as the CPU
// Model (model.h) op for op, through kernels::cuda. By default
// (GemmInputs::Bf16) every product runs on the tensor cores with bf16 inputs
// and fp32 accumulation: the GEMMs, attention (attention_block_mma) and the
// SSD scan's GEMM stages (ssd_scan_bf16); the norms write bf16 for the GEMMs
// they feed, the MLP's inner activation stays bf16, Q/K/V are one GEMM, and
// each mixer's last GEMM adds into the residual stream in its epilogue.
// GemmInputs::Fp32 multiplies the exact fp32 inputs the CPU does, with the
// fp32 kernels (tests against it).
//
// Every pointer named d_* is device memory; ids, targets and results named
// otherwise are host memory. Work runs on the legacy default stream of the
// current device (kernels/cuda/cuda_common.cuh), which must be the device the
// model was created on.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "kernels/gpu_op.h"
#include "kernels/sampling.h"
#include "model/config.h"
#include "model/device_buffer.h"
#include "model/memory_plan.h"
#include "model/model.h"

namespace ringscan {

class DeviceProfiler;
enum class GemmInputs { Bf16, Fp32 };

struct DeviceModelOptions {
  // The two settings every caller gives (DeviceModelOptions{gemm, block}); the rest by name.
  DeviceModelOptions(GemmInputs g = GemmInputs::Bf16, int64_t block = 0) : gemm(g), block_tokens(block) {}
  GemmInputs gemm = GemmInputs::Bf16;
  int64_t block_tokens = 0;  // tokens per prefill block (0: the host model's); also the largest decode batch
  // KV cache element type, F32 or BF16 (fp32 accumulation either way). Unset:
  // BF16 with bf16 GEMM inputs, F32 with fp32 ones. The bf16 engine's prefill
  // attention rounds K and V to bf16 on the tensor cores anyway, so storing
  // them rounded changes no prefill result, while it halves the cache and the
  // bytes each decode step reads from it; the fp32 engine is the exact path
  // compared with the CPU engine, so it keeps an exact cache.
  std::optional<DType> kv_cache;
  // Decode steps with sampling (decode_and_sample) replayed as CUDA graphs,
  // one per padded batch size (decode_graph_size), at most graph_cache of them
  // kept (least recently used evicted).
  bool decode_graphs = true;
  int graph_cache = 8;
};

// What a sequence leaves behind on the device, as InferenceState on the host.
struct DeviceLayerCache {
  DeviceBuffer conv_history;  // Mamba: [K-1, conv_dim], zeros at start
  DeviceBuffer ssm_state;     // Mamba: [heads, head_dim, state]
  DeviceBuffer k, v;          // attention: [capacity, kv_heads*head_dim] in kv_dtype
  DType kv_dtype = DType::F32;
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
  // The stream every op of the engine runs on (its own, created with the
  // model: the GPU op contract, kernels/gpu_op.h). It is a blocking stream, so
  // work still issued on the legacy default stream (sampling; pageable
  // host-device copies) stays ordered with it. Code that reads the engine's
  // buffers on the host, or queues work on them, uses this stream.
  kernels::GpuStream stream() const { return stream_; }
  int64_t block_tokens() const { return block_; }
  uint64_t weight_bytes() const { return weights_.bytes(); }
  uint64_t arena_bytes() const { return arena_.bytes(); }

  // A second engine over these weights for work that runs beside this one's
  // (the Decoder's prefill chunks beside a decode step, runtime/decode.h): the
  // same options and block size, its own stream (a blocking one, like this
  // model's), activation arena, pinned tables and cuBLAS workspace; it reads
  // this model's weights, so it must not outlive it. Sequences are
  // interchangeable between the two: one prefilled there decodes here.
  std::unique_ptr<DeviceModel> make_sibling() const;
  // The device bytes make_sibling() allocates: an arena like this one's and a cuBLAS workspace.
  uint64_t sibling_bytes() const;

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

  // The decode step of a sharded decode (runtime/cuda/device_sharded_decode.cpp):
  // decode_step, except that each attention layer's attention comes from
  // `attend` (layer, n, d_qkv: the rows' q | k | v after RoPE, ld_qkv apart;
  // it writes the attention state acc, m, l of the n queries over the whole
  // sharded cache), not from the sequences' caches, which it neither reads,
  // checks nor grows (their Mamba states are the step's). Not a graph: attend
  // exchanges with other ranks.
  using DecodeAttention = std::function<void(int layer, int64_t n, const float* d_qkv, int64_t ld_qkv, float* d_acc,
                                             float* d_m, float* d_l)>;
  const float* decode_step(const int32_t* ids, int64_t n, DeviceSequence* const* seqs, const DecodeAttention& attend);
  // Grows an attention cache to hold `rows` rows, keeping what it holds (may wait for the stream).
  void reserve_kv(DeviceLayerCache& c, int64_t rows) const { ensure_kv_capacity(c, rows); }

  // decode_step and sample() in one: the next token of each of n sequences
  // into out (host). The whole step (the tables' upload, every layer, lm_head,
  // the draw, the ids' download) is one CUDA graph per padded batch size when
  // graphs are on (DeviceModelOptions::decode_graphs), else the same work
  // queued op by op; both give the same ids. Synchronises once, to read the
  // ids. The batch is padded to decode_graph_size(n) with rows that touch no
  // sequence (null state pointers): a continuous batch that shrinks or grows
  // by a few sequences reuses its graph instead of capturing a new one.
  void decode_and_sample(const int32_t* ids, int64_t n, DeviceSequence* const* seqs,
                         const kernels::SamplingParams* params, const uint64_t* stream, const uint64_t* step,
                         int32_t* out);
  // The captured batch size for n sequences: 1, 2, 4, 8, then multiples of 8
  // (at most block_tokens()).
  int64_t decode_graph_size(int64_t n) const;
  // Graphs captured so far (a capture per miss of the cache) and kept now.
  int64_t graphs_captured() const { return graphs_captured_; }
  int64_t graphs_kept() const { return static_cast<int64_t>(graphs_.size()); }
  DType kv_cache_dtype() const { return kv_dtype_; }
  // Turns the graph path on or off (benchmarks compare the two).
  void set_decode_graphs(bool on) { decode_graphs_ = on; }

  // Next tokens from rows of final hidden states (lm_head and the draw on the
  // GPU, kernels/sampling.h): params, stream, step and out are host arrays of
  // n. Returns when out is filled.
  void sample(const float* d_hidden, int64_t n, const kernels::SamplingParams* params, const uint64_t* stream,
              const uint64_t* step, int32_t* out);

  // --- Phases, on caller-given device buffers of any n rows -------------------
  // What forward() runs per block and the sequence-parallel runner
  // (runtime/device_sequence_parallel.h) runs per segment, with exchanges
  // between them; the CPU twins are in model/layers.h.
  // Activations that feed GEMMs (the input norms' outputs, the MLP's inner
  // activation) are bf16 with GemmInputs::Bf16 (written once by the op that
  // makes them, read by the GEMM without a conversion), fp32 with Fp32.
  // Buffers for them are sized in floats and hold either.
  DType act_dtype() const { return gemm_ == GemmInputs::Bf16 ? DType::BF16 : DType::F32; }
  // Row `row` of such a buffer of `width` columns.
  const void* act_row(const void* d_base, int64_t row, int64_t width) const {
    return static_cast<const char*>(d_base) + row * width * dtype_size(act_dtype());
  }
  void* act_row(void* d_base, int64_t row, int64_t width) const {
    return static_cast<char*>(d_base) + row * width * dtype_size(act_dtype());
  }
  // Embedding rows of host ids (checked against the vocabulary), any n.
  void embed(const int32_t* ids, int64_t n, float* d_out);
  // d_out = RMSNorm of layer's input norm, in act_dtype() (must not alias
  // d_h in the bf16 mode); layer < 0: the final norm_f, fp32, may alias.
  void norm(int layer, const float* d_h, int64_t n, float* d_out);
  // Mamba: proj [n, in_proj_dim] (z | xBC | dt_raw), conv [n, conv_dim]
  // (post-conv xBC), dt [n, heads], y [n, d_inner].
  struct MambaBuffers {
    float *proj, *conv, *dt, *y;
  };
  // d_x: the layer's normed input (norm(), act_dtype()).
  void mamba_in_proj(int layer, const void* d_x, int64_t n, const MambaBuffers& b);
  // Conv from d_history (K-1 pre-conv rows before the rows; null = zeros), dt,
  // and the scan from d_init (null = zeros) into b.y; d_final (may be null)
  // receives the state after the rows; d_init and d_final may be the same.
  // d_seq (device, one int32 per row; null: one sequence): the rows are packed
  // sequences, each convolved and scanned alone from zeros (history, init and
  // final must then be null). Runs mamba_conv_dt, then mamba_ssd.
  void mamba_scan(int layer, int64_t n, const float* d_history, const float* d_init, const MambaBuffers& b,
                  float* d_final, const int32_t* d_seq = nullptr);
  // The scan's two halves: the conv (into b.conv) and dt (into b.dt); then the
  // SSD into b.y. final_ready (a cudaEvent_t, may be null) is recorded on
  // stream() as soon as d_final is complete, before the outputs are computed
  // (kernels/ssd_scan.h, ssd_scan_signal_final): the sequence-parallel state
  // scan starts from it while the outputs run.
  void mamba_conv_dt(int layer, int64_t n, const float* d_history, const MambaBuffers& b,
                     const int32_t* d_seq = nullptr);
  void mamba_ssd(int layer, int64_t n, const float* d_init, const MambaBuffers& b, float* d_final,
                 const int32_t* d_seq = nullptr, void* final_ready = nullptr);
  // A = -exp(A_log) of a Mamba layer, on the host ([heads]).
  const std::vector<float>& mamba_A(int layer) const;
  // d_decay [heads] = exp(A * sum of b.dt's n rows): the segment's total decay
  // for the sequence-parallel state scan (kernels/ssd_scan.h), on the device.
  void mamba_segment_decay(int layer, int64_t n, const MambaBuffers& b, float* d_decay);
  // b.y += the contribution of an incoming state (kernels/ssd_scan.h).
  // ws: ssd_state_correction_scratch({n, ...}).bytes of the caller's (kernels/ssd_scan.h).
  void mamba_state_correction(int layer, int64_t n, const float* d_incoming, const MambaBuffers& b,
                              const kernels::Workspace& ws);
  // D skip, gated RMSNorm, out_proj into d_out [n, hidden]; accumulate: d_out
  // += instead (the residual add, in the GEMM's epilogue). Overwrites b.conv
  // (the norm's output, out_proj's input) and b.y.
  void mamba_out(int layer, int64_t n, const MambaBuffers& b, float* d_out, bool accumulate = false);
  // Attention: one GEMM (the q, k and v weights stored as one matrix) into
  // d_qkv [n, qkv_dim()], each row q | k | v (heads*head_dim, then
  // kv_heads*head_dim twice), RoPE applied at positions pos0.. (d_pos, device
  // [n]: row r at d_pos[r] instead, the packed prefill's restarting positions).
  int64_t qkv_dim() const { return (cfg_.num_heads + 2 * cfg_.num_kv_heads) * cfg_.head_dim; }
  void attention_qkv(int layer, const void* d_x, int64_t n, int64_t pos0, float* d_qkv,
                     const int64_t* d_pos = nullptr);
  // Attention's output from a state (acc, l of n queries): [n, heads*head_dim]
  // in act_dtype() at d_y (o_proj's input, written as the GEMM reads it).
  void attention_output(int64_t n, const float* d_acc, const float* d_l, void* d_y);
  // o_proj of the attention output d_y [n, heads*head_dim] (act_dtype()) into d_out (+= with accumulate).
  void attention_out(int layer, int64_t n, const void* d_y, float* d_out, bool accumulate = false);
  // Folds keys [0, lk) at positions k_pos0.. into the attention state (acc,
  // m, l) of lq queries at q_pos0.. (kernels/attention.h's attention_block,
  // causal): on the tensor cores with bf16-rounded q, k, v and weights for
  // GemmInputs::Bf16, with the exact fp32 kernel for Fp32. Split partials
  // (short queries) use the arena's attention workspace.
  void attention_fold(const float* d_q, int64_t ld_q, int64_t lq, int64_t q_pos0, const float* d_k, const float* d_v,
                      int64_t ld_kv, int64_t lk, int64_t k_pos0, float* d_acc, float* d_m, float* d_l);
  // The same for n packed rows of several sequences (d_seq: each row's
  // sequence), each attending causally to its own: one launch for all
  // (kernels/attention.h's attention_varlen), on the same two kernels.
  void attention_fold_varlen(const float* d_qkv, int64_t n, const int32_t* d_seq, float* d_acc, float* d_m,
                             float* d_l);
  // MLP of d_x (act_dtype()) into d_out (or += with accumulate); up and gate
  // are [n, intermediate] float-sized scratch (gate unused for relu2).
  void mlp(int layer, const void* d_x, int64_t n, float* d_up, float* d_gate, float* d_out, bool accumulate = false);

  // Per-op GPU times (bench_gpu): while set, the engine marks each op's end
  // on the stream (model/device_profiler.h); null turns it off.
  void set_profiler(DeviceProfiler* p) { prof_ = p; }
  // Attributes the stream time since the previous mark to `label` (a no-op without a profiler).
  void mark(const char* label);
  // Rows of logits that target_logprobs / sampling compute at once.
  int64_t logits_rows() const { return logits_rows_; }

 private:
  struct Layer;
  struct SiblingOf {
    const DeviceModel* parent;
  };
  explicit DeviceModel(SiblingOf p);
  void upload_weights(const Model& host);  // cuda/device_weights.cpp
  void layout_arena();
  // d_y (+)= d_x W^T, d_x in x_dtype, d_y in y_dtype (kernels/linear.h; the
  // Fp32 engine takes and gives F32 only).
  void linear(const void* d_x, DType x_dtype, int64_t ld_x, int64_t rows, const WeightView& w, void* d_y, DType y_dtype,
              int64_t ld_y, bool accumulate = false);
  void mamba_block(int layer, DeviceLayerCache& c, int64_t n);
  void attention_block(int layer, DeviceLayerCache& c, int64_t n, int64_t pos0);
  // Decode (device_decode_step.cpp): prepare_decode checks the batch, grows
  // the caches and fills the pinned tables for n sequences padded to rows;
  // enqueue_decode queues the step of `rows` rows on the stream from the
  // tables only (capturable); with sample, also lm_head, the draw and the ids'
  // copy into pinned memory.
  void prepare_decode(const int32_t* ids, int64_t n, int64_t rows, DeviceSequence* const* seqs);
  void enqueue_decode(int64_t rows, bool sample);
  void enqueue_sample(const float* d_hidden, int64_t rows);
  void mamba_decode(int layer, int mamba_index, int64_t rows);
  void attention_decode(int layer, int attn_index, int64_t rows);
  void run_decode_graph(int64_t rows);
  void finish_decode(int64_t n, DeviceSequence* const* seqs);
  template <class T>
  T* table(uint64_t offset, int index = 0, bool device = true) const;
  void ensure_kv_capacity(DeviceLayerCache& c, int64_t rows) const;
  void init_caches(DeviceSequence& seq) const;

  ModelConfig cfg_;
  GemmInputs gemm_;
  kernels::GpuStream stream_ = nullptr;
  int64_t block_ = 0, logits_rows_ = 0;
  DeviceBuffer weights_, arena_;  // weights_: empty in a sibling (the parent's are read)
  DeviceBuffer gemm_ws_own_;      // a sibling's cuBLAS workspace for its stream (kernels/linear.h)
  std::vector<Layer> layers_;
  WeightView embeddings_, norm_f_, lm_head_;
  // Arena views.
  float *h_ = nullptr, *normed_ = nullptr, *proj_ = nullptr, *conv_ = nullptr, *dt_ = nullptr,
        *y_ = nullptr, *qkv_ = nullptr, *acc_ = nullptr, *m_ = nullptr, *l_ = nullptr,
        *up_ = nullptr, *gate_ = nullptr, *hist_tmp_ = nullptr, *logits_ = nullptr,
        *logprob_ = nullptr;
  // Arena slices the ops take as workspace (kernels/gpu_op.h).
  kernels::Workspace attn_ws_;  // split partials of attention_fold
  kernels::Workspace gemm_ws_;  // fp32 GEMM inputs rounded to bf16
  kernels::Workspace ssd_ws_;   // the SSD scan's scratch for a block
  int32_t *ids_ = nullptr, *targets_ = nullptr, *seq_ = nullptr;
  int64_t* pos_ = nullptr;  // packed prefill: each row's position in its sequence (RoPE)
  // Decode tables (model/memory_plan.h DecodeTableLayout): the device copy in
  // the arena, the host copy pinned; the ids drawn come back to pinned memory.
  DecodeTableLayout tables_;
  char* d_tables_ = nullptr;
  char* h_tables_ = nullptr;
  int32_t* d_out_ids_ = nullptr;
  int32_t* h_out_ids_ = nullptr;
  kernels::Workspace attn_decode_ws_;
  struct EventHandle;
  std::unique_ptr<EventHandle> upload_done_;  // the last step's table upload: the pinned tables may be rewritten
  DType kv_dtype_ = DType::F32;
  bool decode_graphs_ = true, capturing_ = false;
  const DecodeAttention* decode_attend_ = nullptr;  // set during a sharded decode step
  int graph_cache_ = 8;
  struct Graph;
  std::vector<std::unique_ptr<Graph>> graphs_;
  int64_t graphs_captured_ = 0;
  uint64_t graph_clock_ = 0;
  DeviceProfiler* prof_ = nullptr;
};

}  // namespace ringscan
