// The GPU engine of sharded decode (sharded_decode_engine.h; decode.h has the
// algorithm and its bytes, sharded_decode.cpp the scheduling shared with the
// CPU engine). The driver runs DeviceModel's batched decode step with each
// attention layer's attention computed here over the group's device shards:
// queries broadcast, each new K/V row appended on its rank (kv_append), every
// rank's partials of the B queries in one attention_decode launch, merged on
// the driver by log-sum-exp in rank order (attention_merge). On a device
// communicator (NCCL) every exchanged buffer is device memory; on the MPI
// communicator they are staged through host memory (ranks may share a GPU).
// The tables and the query/partial exchanges are shared with the GPU
// prefix-shared decode (device_decode_exchange.h).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>

#include "kernels/attention.h"
#include "kernels/attention_decode.h"
#include "kernels/kv_append.h"
#include "model/cuda/cuda_check.h"
#include "model/device_model.h"
#include "runtime/decode.h"
#include "runtime/cuda/device_decode_exchange.h"
#include "runtime/device_sequence_parallel.h"
#include "runtime/sharded_decode_engine.h"
#include "util/error.h"

namespace ringscan {

namespace {

namespace kc = kernels::cuda;


struct GpuShardedSequence : ShardedDecodeEngine::Sequence {
  DeviceSequenceParallelDecodeState st;
};
GpuShardedSequence& gpu(ShardedDecodeEngine::Sequence* s) { return static_cast<GpuShardedSequence&>(*s); }

class DeviceShardedDecodeEngine final : public ShardedDecodeEngine {
 public:
  DeviceShardedDecodeEngine(DeviceModel& model, std::function<comm::Communicator&(comm::Communicator&)> exchange)
      : model_(model), exchange_(std::move(exchange)), tables_(model.config()) {}
  int64_t vocab_size() const override { return model_.config().vocab_size; }
  int64_t max_batch() const override { return model_.block_tokens(); }

  std::unique_ptr<Sequence> prefill(comm::Communicator& group, const SequenceLayout& layout,
                                    const std::function<std::vector<int32_t>(const Segment&)>& ids) override {
    DeviceSequenceParallelForward sp(model_, exchange_(group), layout);
    sp.set_keep_decode_state(true);
    sp.run(ids);
    return adopt(sp.take_decode_state());
  }

  static std::unique_ptr<Sequence> adopt(DeviceSequenceParallelDecodeState st) {
    auto s = std::make_unique<GpuShardedSequence>();
    s->driver = st.driver;
    s->length = st.length;
    s->holds_last_hidden = st.last_hidden.bytes() > 0;
    s->st = std::move(st);
    return s;
  }

  int32_t first_token(Sequence& seq, const kernels::SamplingParams& params, uint64_t stream,
                      uint64_t step) override {
    auto& s = gpu(&seq);
    int32_t token = 0;
    model_.sample(s.st.last_hidden.as<float>(), 1, &params, &stream, &step, &token);
    s.st.last_hidden = DeviceBuffer();
    s.holds_last_hidden = false;
    return token;
  }

  void step(comm::Communicator& group, int driver, const int32_t* ids, int64_t n, Sequence* const* seqs,
            const int* target, const kernels::SamplingParams* params, const uint64_t* stream, const uint64_t* step,
            int32_t* out) override;

 private:
  void reserve(int64_t n);
  // One attention layer (index a among them) of the step, on every rank; the
  // driver gives the rows' q | k | v (ld apart) and receives the merged state.
  void attend(comm::Communicator& x, int driver, int a, int64_t n, const int* target, const float* d_qkv, int64_t ld,
              float* d_acc, float* d_m, float* d_l);
  using Tab = DecodeKvTables;

  DeviceModel& model_;
  std::function<comm::Communicator&(comm::Communicator&)> exchange_;
  DecodeKvTables tables_;
  DecodeExchange xch_;
  int64_t cap_ = 0;  // rows the buffers below hold
  DeviceBuffer d_q_, d_kv_out_, d_kv_in_, d_part_, d_theirs_, d_ws_;
  std::vector<float> h_kv_out_, h_kv_in_;  // the MPI path's staging
};

void DeviceShardedDecodeEngine::reserve(int64_t n) {
  if (n <= cap_) return;
  const ModelConfig& c = model_.config();
  const int64_t qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim, part = qd + 2 * c.num_heads;
  cap_ = n;
  auto f = [](int64_t floats, const char* what) { return DeviceBuffer(uint64_t(std::max<int64_t>(floats, 1)) * 4, what); };
  d_q_ = f(n * qd, "sharded decode queries");
  d_kv_out_ = f(n * 2 * kvd, "sharded decode outgoing K/V rows");
  d_kv_in_ = f(n * 2 * kvd, "sharded decode incoming K/V rows");
  d_part_ = f(n * part, "sharded decode partials");
  d_theirs_ = f(n * part, "another rank's sharded decode partials");
  const kernels::AttentionShape s{c.num_heads, c.num_kv_heads, c.head_dim};
  d_ws_ = DeviceBuffer(std::max<size_t>(kernels::attention_decode_workspace(s, n), 1), "sharded decode attention splits");
}

void DeviceShardedDecodeEngine::step(comm::Communicator& group, int driver, const int32_t* ids, int64_t n,
                                     Sequence* const* seqs, const int* target, const kernels::SamplingParams* params,
                                     const uint64_t* stream, const uint64_t* step, int32_t* out) {
  const int me = group.rank();
  comm::Communicator& x = exchange_(group);
  reserve(n);
  std::vector<DeviceSequence*> ds(n);
  for (int64_t b = 0; b < n; ++b) ds[b] = &gpu(seqs[b]).st.seq;
  tables_.fill(model_, me, driver, n, ds.data(), target);
  const std::vector<int>& attn_layers = tables_.attention_layers();
  if (me == driver) {
    const float* h = model_.decode_step(ids, n, ds.data(),
                                        [&](int layer, int64_t rows, const float* d_qkv, int64_t ld, float* d_acc,
                                            float* d_m, float* d_l) {
                                          attend(x, driver, tables_.index_of(layer), rows, target, d_qkv, ld, d_acc,
                                                 d_m, d_l);
                                        });
    model_.sample(h, n, params, stream, step, out);
  } else {
    for (size_t a = 0; a < attn_layers.size(); ++a)
      attend(x, driver, static_cast<int>(a), n, target, nullptr, 0, nullptr, nullptr, nullptr);
  }
  for (int64_t b = 0; b < n; ++b)
    if (target[b] == me)
      for (int layer : attn_layers) gpu(seqs[b]).st.seq.layers[layer].kv_rows += 1;
}

void DeviceShardedDecodeEngine::attend(comm::Communicator& x, int drv, int a, int64_t n, const int* target,
                                       const float* d_qkv, int64_t ld, float* d_acc, float* d_m, float* d_l) {
  const ModelConfig& c = model_.config();
  const int64_t qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim, Hq = c.num_heads;
  const int P = x.size(), me = x.rank();
  const bool dev = x.memory_space() == comm::MemorySpace::cuda;
  const cudaStream_t s = model_.stream();
  const DType dtype = model_.kv_cache_dtype();
  float* q = d_q_.as<float>();

  // 1. Every rank gets the queries.
  xch_.broadcast_queries(x, drv, d_qkv, ld, n, qd, q, s, ShardedDecoder::kQueryLabel);

  // 2. Each new K/V row to the rank that stores it: one message per rank, rows in batch order.
  std::vector<comm::Request> sends;
  if (me == drv) {
    kc::kv_append(d_qkv + qd, d_qkv + qd + kvd, ld, n, kvd, tables_.dev_ptr(a, Tab::AppendK),
                  tables_.dev_ptr(a, Tab::AppendV), tables_.dev_int(a, Tab::AppendRow), dtype, s);
    std::vector<int64_t> first(P + 1, 0);  // rank r's rows are [first[r], first[r+1]) of d_kv_out_
    for (int64_t b = 0; b < n; ++b)
      if (target[b] != me) ++first[target[b] + 1];
    for (int r = 0; r < P; ++r) first[r + 1] += first[r];
    std::vector<int64_t> next(first.begin(), first.end() - 1);
    float* outgoing = d_kv_out_.as<float>();
    for (int64_t b = 0; b < n; ++b)  // k and v are adjacent in a q | k | v row
      if (target[b] != me)
        cuda_check(cudaMemcpyAsync(outgoing + next[target[b]]++ * 2 * kvd, d_qkv + b * ld + qd, 2 * kvd * 4,
                              cudaMemcpyDeviceToDevice, s),
              "K/V row copy");
    const float* src = outgoing;
    if (!dev && first[P] > 0) {
      h_kv_out_.resize(first[P] * 2 * kvd);
      cuda_check(cudaMemcpy(h_kv_out_.data(), outgoing, h_kv_out_.size() * 4, cudaMemcpyDeviceToHost), "K/V rows download");
      src = h_kv_out_.data();
    }
    auto _ = x.counter_scope(ShardedDecoder::kKvLabel);
    for (int r = 0; r < P; ++r)
      if (first[r + 1] > first[r])
        sends.push_back(x.isend(src + first[r] * 2 * kvd, (first[r + 1] - first[r]) * 2 * kvd, r));
  } else {
    int64_t mine = 0;
    for (int64_t b = 0; b < n; ++b) mine += target[b] == me;
    if (mine) {
      float* rows = d_kv_in_.as<float>();
      {
        auto _ = x.counter_scope(ShardedDecoder::kKvLabel);
        if (dev) {
          x.recv(rows, mine * 2 * kvd, drv);
        } else {
          h_kv_in_.resize(mine * 2 * kvd);
          x.recv(h_kv_in_.data(), h_kv_in_.size(), drv);
          cuda_check(cudaMemcpy(rows, h_kv_in_.data(), h_kv_in_.size() * 4, cudaMemcpyHostToDevice), "K/V rows upload");
        }
      }
      kc::kv_append(rows, rows + kvd, 2 * kvd, mine, kvd, tables_.dev_ptr(a, Tab::AppendK),
                    tables_.dev_ptr(a, Tab::AppendV), tables_.dev_int(a, Tab::AppendRow), dtype, s);
    }
  }

  // 3. Partials of every query over this rank's shard of its document, in one
  //    launch: all keys are earlier (or the token itself), so no mask.
  const kernels::AttentionShape shape{c.num_heads, c.num_kv_heads, c.head_dim};
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  float *acc = d_part_.as<float>(), *m = acc + n * qd, *l = m + n * Hq;
  kc::attention_decode(shape, q, qd, n, tables_.dev_ptr(a, Tab::AttendK), tables_.dev_ptr(a, Tab::AttendV), dtype,
                       tables_.dev_int(a, Tab::AttendLen), scale, acc, m, l,
                       kernels::Workspace{d_ws_.get(), d_ws_.bytes()}, s);

  // 4. The driver merges every rank's partials, in rank order.
  xch_.merge_partials(x, drv, shape, n, acc, d_theirs_.as<float>(), d_acc, d_m, d_l, s,
                      ShardedDecoder::kPartialLabel);
  if (me != drv) return;
  auto _ = x.counter_scope(ShardedDecoder::kKvLabel);
  comm::wait_all(sends);
}

}  // namespace

std::unique_ptr<ShardedDecodeEngine> make_device_sharded_decode_engine(
    DeviceModel& model, std::function<comm::Communicator&(comm::Communicator&)> exchange) {
  return std::make_unique<DeviceShardedDecodeEngine>(model, std::move(exchange));
}

// The engine's own sequence from a prefill the caller ran (GpuForwardedSegments).
std::unique_ptr<ShardedDecodeEngine::Sequence> adopt_device_decode_state(DeviceSequenceParallelDecodeState st) {
  return DeviceShardedDecodeEngine::adopt(std::move(st));
}

}  // namespace ringscan
