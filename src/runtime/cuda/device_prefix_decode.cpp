// The GPU engine of prefix-shared decoding (prefix_decode_engine.h; the
// algorithm and its bytes in prefix_decode.h, the scheduling shared with the
// CPU engine in prefix_decode.cpp). Each rank uploads its shard of the
// prefix K/V once, in the engine's KV dtype (bf16 engine: bf16; fp32: fp32),
// and the driver the prefix's Mamba states, which every fork copies device to
// device. The driver runs DeviceModel's batched decode step with each
// attention layer's attention computed here:
//   - the B queries broadcast (device_decode_exchange.h: NCCL device buffers,
//     or staged through host memory over MPI, ranks sharing a GPU);
//   - every rank's partials of all B queries over its prefix shard from ONE
//     block-attention call with the B queries as its query rows and no mask
//     (attention_block in fp32; attention_block_mma on bf16 queries, K and V
//     for the bf16 engine), so each prefix K/V tile is read once per step for
//     the batch;
//   - merged on the driver in rank order (attention_merge), then each fork's
//     own suffix: its new K/V row appended to its private device cache
//     (kv_append), attended with attention_decode (per-fork pointer tables)
//     and merged last, as the CPU engine does.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/attention.h"
#include "kernels/attention_decode.h"
#include "kernels/kv_append.h"
#include "model/cuda/cuda_check.h"
#include "model/device_model.h"
#include "runtime/cuda/device_decode_exchange.h"
#include "runtime/prefix_decode.h"
#include "runtime/prefix_decode_engine.h"
#include "util/error.h"

namespace ringscan {

namespace {

namespace kc = kernels::cuda;


struct GpuPrefix : PrefixDecodeEngine::Prefix {
  struct Shard {
    DeviceBuffer k, v;  // [rows, kv_heads*head_dim] in the engine's KV dtype
    int64_t rows = 0;
  };
  std::vector<Shard> kv;                    // per model layer (attention layers set)
  std::vector<DeviceBuffer> conv, ssm;      // per model layer (Mamba layers, on the driver)
};
struct GpuFork : PrefixDecodeEngine::Fork {
  DeviceSequence seq;  // driver: the forked Mamba states and the private suffix K/V
};
const GpuPrefix& gpu(const PrefixDecodeEngine::Prefix& p) { return static_cast<const GpuPrefix&>(p); }
GpuFork& gpu(PrefixDecodeEngine::Fork* f) { return static_cast<GpuFork&>(*f); }

// Host fp32 rows to a device buffer of fp32 (the Mamba states).
DeviceBuffer upload_floats(const float* host, int64_t n, const char* what) {
  DeviceBuffer d(uint64_t(std::max<int64_t>(n, 1)) * 4, what);
  if (n) cuda_check(cudaMemcpy(d.get(), host, n * 4, cudaMemcpyHostToDevice), what);
  return d;
}

// One layer's K (values: V) rows of the prefix shard, its pieces in order (rows
// of `from`, F32 or BF16, possibly read-only mappings of a state's files), into
// one device buffer of the engine's `to`: copied as they are when the dtypes
// agree, else converted on the host a slice at a time (bf16 -> fp32 is exact,
// fp32 -> bf16 rounds to nearest even).
DeviceBuffer upload_pieces(const std::vector<PrefixKV::Piece>& pieces, bool values, int64_t kvd, DType from, DType to,
                           const char* what) {
  int64_t rows = 0;
  for (const PrefixKV::Piece& p : pieces) rows += p.rows;
  DeviceBuffer d(uint64_t(std::max<int64_t>(rows * kvd, 1)) * dtype_size(to), what);
  char* dst = d.as<char>();
  constexpr int64_t kSlice = int64_t{1} << 20;
  std::vector<uint16_t> h16;
  std::vector<float> h32;
  for (const PrefixKV::Piece& p : pieces) {
    const void* src = values ? p.v : p.k;
    const int64_t n = p.rows * kvd;
    if (from == to) {
      if (n) cuda_check(cudaMemcpy(dst, src, n * dtype_size(to), cudaMemcpyHostToDevice), what);
    } else {
      for (int64_t i0 = 0; i0 < n; i0 += kSlice) {
        const int64_t m = std::min(kSlice, n - i0);
        const void* out = nullptr;
        if (to == DType::BF16) {
          h16.resize(m);
          const float* f = static_cast<const float*>(src) + i0;
          for (int64_t i = 0; i < m; ++i) h16[i] = f32_to_bf16(f[i]);
          out = h16.data();
        } else {
          h32.resize(m);
          const uint16_t* b = static_cast<const uint16_t*>(src) + i0;
          for (int64_t i = 0; i < m; ++i) h32[i] = bf16_to_f32(b[i]);
          out = h32.data();
        }
        cuda_check(cudaMemcpy(dst + i0 * dtype_size(to), out, m * dtype_size(to), cudaMemcpyHostToDevice), what);
      }
    }
    dst += n * dtype_size(to);
  }
  return d;
}

class DevicePrefixDecodeEngine final : public PrefixDecodeEngine {
 public:
  DevicePrefixDecodeEngine(DeviceModel& model, std::function<comm::Communicator&(comm::Communicator&)> exchange)
      : model_(model), exchange_(std::move(exchange)), tables_(model.config()) {}
  int64_t vocab_size() const override { return model_.config().vocab_size; }
  int64_t max_batch() const override { return model_.block_tokens(); }
  std::unique_ptr<Prefix> load_prefix(const comm::Communicator& group, SequenceParallelDecodeState st,
                                      PrefixKV kv) override;
  std::unique_ptr<Fork> fork(const Prefix& prefix) override;
  void step(comm::Communicator& group, const Prefix& prefix, const int32_t* ids, int64_t n, Fork* const* forks,
            const int64_t* drawing, int64_t n_draw, const kernels::SamplingParams* params, const uint64_t* stream,
            const uint64_t* step, int32_t* out) override;

 private:
  void reserve(int64_t n);
  // One attention layer (index a among them) of the step, on every rank; the
  // driver gives the rows' q | k | v (ld apart) and receives the merged state.
  void attend(comm::Communicator& x, const GpuPrefix& p, int a, int64_t n, const float* d_qkv, int64_t ld,
              float* d_acc, float* d_m, float* d_l);
  using Tab = DecodeKvTables;

  DeviceModel& model_;
  std::function<comm::Communicator&(comm::Communicator&)> exchange_;
  DecodeKvTables tables_;  // the forks' suffix caches (driver)
  DecodeExchange xch_;
  int64_t cap_ = 0;  // rows the buffers below hold
  // Queries (fp32, and rounded to bf16 for the bf16 engine's prefix attention),
  // this rank's prefix partials, another rank's, the forks' suffix partials,
  // the drawing rows' hidden states, and the two kernels' split workspaces.
  DeviceBuffer d_q_, d_q_bf16_, d_part_, d_theirs_, d_own_, d_rows_, d_ws_block_, d_ws_decode_;
};

std::unique_ptr<PrefixDecodeEngine::Prefix> DevicePrefixDecodeEngine::load_prefix(const comm::Communicator& group,
                                                                                   SequenceParallelDecodeState st,
                                                                                   PrefixKV kv) {
  const ModelConfig& c = model_.config();
  check_prefix_state(c, st, kv);
  auto p = std::make_unique<GpuPrefix>();
  p->driver = st.driver;
  p->length = st.length;
  p->on_driver = group.rank() == st.driver;
  const int64_t kvd = c.num_kv_heads * c.head_dim;
  const int64_t conv = c.conv_history_elems(), ssm = c.ssm_state_elems();
  const DType dtype = model_.kv_cache_dtype();
  p->kv.resize(c.layers.size());
  p->conv.resize(c.layers.size());
  p->ssm.resize(c.layers.size());
  for (size_t li = 0; li < c.layers.size(); ++li) {
    if (c.layers[li] == LayerKind::Attention) {
      const PrefixKV::Layer& l = kv.layers[li];
      p->kv[li].k = upload_pieces(l.pieces, false, kvd, kv.dtype, dtype, "the prefix's K rows");
      p->kv[li].v = upload_pieces(l.pieces, true, kvd, kv.dtype, dtype, "the prefix's V rows");
      p->kv[li].rows = l.rows();
    } else if (c.layers[li] == LayerKind::Mamba && p->on_driver) {
      const LayerCache& h = st.state.layers[li];
      if (static_cast<int64_t>(h.conv_history.size()) != conv || static_cast<int64_t>(h.ssm_state.size()) != ssm)
        throw Error("the prefix state's Mamba layer " + std::to_string(li) + " holds " +
                    std::to_string(h.conv_history.size()) + " conv history and " + std::to_string(h.ssm_state.size()) +
                    " SSM state values on its driver, the model expects " + std::to_string(conv) + " and " +
                    std::to_string(ssm));
      p->conv[li] = upload_floats(h.conv_history.data(), conv, "the prefix's conv history");
      p->ssm[li] = upload_floats(h.ssm_state.data(), ssm, "the prefix's SSM state");
    }
  }
  return p;
}

std::unique_ptr<PrefixDecodeEngine::Fork> DevicePrefixDecodeEngine::fork(const Prefix& prefix) {
  const ModelConfig& c = model_.config();
  const GpuPrefix& p = gpu(prefix);
  auto f = std::make_unique<GpuFork>();
  if (!p.on_driver) return f;
  f->seq.position = p.length;
  f->seq.layers.resize(c.layers.size());
  for (size_t li = 0; li < c.layers.size(); ++li) {
    DeviceLayerCache& l = f->seq.layers[li];
    l.kv_dtype = model_.kv_cache_dtype();  // attention: the suffix cache, grown by the step's tables
    if (c.layers[li] != LayerKind::Mamba) continue;
    l.conv_history = DeviceBuffer(p.conv[li].bytes(), "a forked conv history");
    l.ssm_state = DeviceBuffer(p.ssm[li].bytes(), "a forked SSM state");
    cuda_check(cudaMemcpyAsync(l.conv_history.get(), p.conv[li].get(), p.conv[li].bytes(), cudaMemcpyDeviceToDevice,
                          model_.stream()),
          "conv history fork");
    cuda_check(cudaMemcpyAsync(l.ssm_state.get(), p.ssm[li].get(), p.ssm[li].bytes(), cudaMemcpyDeviceToDevice,
                          model_.stream()),
          "SSM state fork");
  }
  return f;
}

void DevicePrefixDecodeEngine::reserve(int64_t n) {
  if (n <= cap_) return;
  const ModelConfig& c = model_.config();
  const int64_t qd = c.num_heads * c.head_dim, part = qd + 2 * c.num_heads;
  cap_ = n;
  auto f = [](int64_t floats, const char* what) { return DeviceBuffer(uint64_t(std::max<int64_t>(floats, 1)) * 4, what); };
  d_q_ = f(n * qd, "prefix decode queries");
  d_q_bf16_ = f((n * qd + 1) / 2, "prefix decode bf16 queries");
  d_part_ = f(n * part, "prefix decode partials");
  d_theirs_ = f(n * part, "another rank's prefix decode partials");
  d_own_ = f(n * part, "the forks' suffix partials");
  d_rows_ = f(n * c.hidden_size, "prefix decode drawing rows");
  const kernels::AttentionShape s{c.num_heads, c.num_kv_heads, c.head_dim};
  d_ws_block_ = DeviceBuffer(std::max<size_t>(kc::attention_block_mma_workspace(s, n, 1), 1),
                             "prefix attention splits");
  d_ws_decode_ = DeviceBuffer(std::max<size_t>(kernels::attention_decode_workspace(s, n), 1), "suffix attention splits");
}

void DevicePrefixDecodeEngine::step(comm::Communicator& group, const Prefix& prefix, const int32_t* ids, int64_t n,
                                    Fork* const* forks, const int64_t* drawing, int64_t n_draw,
                                    const kernels::SamplingParams* params, const uint64_t* stream,
                                    const uint64_t* step, int32_t* out) {
  const ModelConfig& c = model_.config();
  const GpuPrefix& p = gpu(prefix);
  comm::Communicator& x = exchange_(group);
  reserve(n);
  const std::vector<int>& attn_layers = tables_.attention_layers();
  if (!p.on_driver) {
    // The driver's decode_step calls attend once per attention layer, in order.
    for (size_t a = 0; a < attn_layers.size(); ++a)
      attend(x, p, static_cast<int>(a), n, nullptr, 0, nullptr, nullptr, nullptr);
    return;
  }
  std::vector<DeviceSequence*> seqs(n);
  for (int64_t b = 0; b < n; ++b) seqs[b] = &gpu(forks[b]).seq;
  const std::vector<int> here(n, x.rank());  // every fork's new row stays in its own suffix, on the driver
  tables_.fill(model_, x.rank(), x.rank(), n, seqs.data(), here.data());
  const float* h = model_.decode_step(ids, n, seqs.data(),
                                      [&](int layer, int64_t rows, const float* d_qkv, int64_t ld, float* d_acc,
                                          float* d_m, float* d_l) {
                                        attend(x, p, tables_.index_of(layer), rows, d_qkv, ld, d_acc, d_m, d_l);
                                      });
  for (int64_t b = 0; b < n; ++b)
    for (int layer : attn_layers) seqs[b]->layers[layer].kv_rows += 1;
  if (n_draw == 0) return;
  const float* rows = h;
  if (n_draw < n) {  // the drawing rows, gathered
    const int64_t D = c.hidden_size;
    for (int64_t i = 0; i < n_draw; ++i)
      cuda_check(cudaMemcpyAsync(d_rows_.as<float>() + i * D, h + drawing[i] * D, D * 4, cudaMemcpyDeviceToDevice,
                            model_.stream()),
            "drawing row copy");
    rows = d_rows_.as<float>();
  }
  model_.sample(rows, n_draw, params, stream, step, out);
}

void DevicePrefixDecodeEngine::attend(comm::Communicator& x, const GpuPrefix& p, int a, int64_t n, const float* d_qkv,
                                      int64_t ld, float* d_acc, float* d_m, float* d_l) {
  const ModelConfig& c = model_.config();
  const int64_t qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim, Hq = c.num_heads;
  const int drv = p.driver;
  const cudaStream_t s = model_.stream();
  const DType dtype = model_.kv_cache_dtype();
  const kernels::AttentionShape shape{c.num_heads, c.num_kv_heads, c.head_dim};
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  float* q = d_q_.as<float>();

  // 1. Every rank gets the queries.
  xch_.broadcast_queries(x, drv, d_qkv, ld, n, qd, q, s, PrefixSharedDecoder::kQueryLabel);

  // 2. All n queries over this rank's prefix shard in one call (all keys
  //    precede every query: no mask).
  const GpuPrefix::Shard& shard = p.kv[tables_.attention_layers()[a]];
  float *acc = d_part_.as<float>(), *m = acc + n * qd, *l = m + n * Hq;
  kc::attention_init(shape, n, acc, m, l, s);
  if (shard.rows > 0) {
    if (dtype == DType::BF16) {  // the tensor-core kernel takes q, k and v in one dtype
      kc::store_rows(q, qd, n, qd, d_q_bf16_.get(), qd, DType::BF16, s);
      kc::attention_block_mma(shape, DType::BF16, d_q_bf16_.get(), qd, n, 0, shard.k.get(), kvd, shard.v.get(), kvd,
                              shard.rows, 0, scale, /*causal=*/false, acc, m, l,
                              kernels::Workspace{d_ws_block_.get(), d_ws_block_.bytes()}, s);
    } else {
      kc::attention_block(shape, q, qd, n, 0, shard.k.as<float>(), kvd, shard.v.as<float>(), kvd, shard.rows, 0, scale,
                          /*causal=*/false, acc, m, l, s);
    }
  }

  // 3. The driver: every rank's prefix partials in rank order, then each
  //    fork's own suffix (its new row appended first: a token sees itself).
  xch_.merge_partials(x, drv, shape, n, acc, d_theirs_.as<float>(), d_acc, d_m, d_l, s,
                      PrefixSharedDecoder::kPartialLabel);
  if (x.rank() != drv) return;
  float *oacc = d_own_.as<float>(), *om = oacc + n * qd, *ol = om + n * Hq;
  kc::kv_append(d_qkv + qd, d_qkv + qd + kvd, ld, n, kvd, tables_.dev_ptr(a, Tab::AppendK),
                tables_.dev_ptr(a, Tab::AppendV), tables_.dev_int(a, Tab::AppendRow), dtype, s);
  kc::attention_decode(shape, d_qkv, ld, n, tables_.dev_ptr(a, Tab::AttendK), tables_.dev_ptr(a, Tab::AttendV), dtype,
                       tables_.dev_int(a, Tab::AttendLen), scale, oacc, om, ol,
                       kernels::Workspace{d_ws_decode_.get(), d_ws_decode_.bytes()}, s);
  kc::attention_merge(shape, n, oacc, om, ol, d_acc, d_m, d_l, s);
}

}  // namespace

std::unique_ptr<PrefixDecodeEngine> make_device_prefix_decode_engine(
    DeviceModel& model, std::function<comm::Communicator&(comm::Communicator&)> exchange) {
  return std::make_unique<DevicePrefixDecodeEngine>(model, std::move(exchange));
}

}  // namespace ringscan
