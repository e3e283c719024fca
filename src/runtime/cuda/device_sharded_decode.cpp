// The GPU engine of sharded decode (sharded_decode_engine.h; decode.h has the
// algorithm and its bytes, sharded_decode.cpp the scheduling shared with the
// CPU engine). The driver runs DeviceModel's batched decode step with each
// attention layer's attention computed here over the group's device shards:
// queries broadcast, each new K/V row appended on its rank (kv_append), every
// rank's partials of the B queries in one attention_decode launch, merged on
// the driver by log-sum-exp in rank order (attention_merge). On a device
// communicator (NCCL) every exchanged buffer is device memory; on the MPI
// communicator they are staged through host memory (ranks may share a GPU).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>

#include "kernels/attention.h"
#include "kernels/attention_decode.h"
#include "kernels/kv_append.h"
#include "model/device_model.h"
#include "runtime/decode.h"
#include "runtime/device_sequence_parallel.h"
#include "runtime/sharded_decode_engine.h"
#include "util/error.h"

namespace ringscan {

namespace {

namespace kc = kernels::cuda;

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(std::string("CUDA: ") + what + " failed: " + cudaGetErrorString(e));
}

struct GpuShardedSequence : ShardedDecodeEngine::Sequence {
  DeviceSequenceParallelDecodeState st;
};
GpuShardedSequence& gpu(ShardedDecodeEngine::Sequence* s) { return static_cast<GpuShardedSequence&>(*s); }

class DeviceShardedDecodeEngine final : public ShardedDecodeEngine {
 public:
  DeviceShardedDecodeEngine(DeviceModel& model, std::function<comm::Communicator&(comm::Communicator&)> exchange)
      : model_(model), exchange_(std::move(exchange)) {
    const ModelConfig& c = model.config();
    for (size_t i = 0; i < c.layers.size(); ++i)
      if (c.layers[i] == LayerKind::Attention) attn_layers_.push_back(static_cast<int>(i));
  }
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
  void fill_tables(int me, int driver, int64_t n, Sequence* const* seqs, const int* target);
  // One attention layer (index a among them) of the step, on every rank; the
  // driver gives the rows' q | k | v (ld apart) and receives the merged state.
  void attend(comm::Communicator& x, int driver, int a, int64_t n, const int* target, const float* d_qkv, int64_t ld,
              float* d_acc, float* d_m, float* d_l);
  // Per attention layer, arrays of n entries: where each row's new K/V row goes
  // (append: on the driver all n rows, null where another rank stores it; on
  // the others this rank's rows only, in batch order) and which shard each
  // query attends (attend), with its rows after the append.
  enum Ptr { AppendK, AppendV, AttendK, AttendV, kPtrs };
  enum Int { AppendRow, AttendLen, kInts };
  void** host_ptr(int a, Ptr p) { return reinterpret_cast<void**>(host_tables_.data()) + (a * kPtrs + p) * cap_; }
  int32_t* host_int(int a, Int i) {
    return reinterpret_cast<int32_t*>(host_tables_.data() + ptr_bytes()) + (a * kInts + i) * cap_;
  }
  void* const* dev_ptr(int a, Ptr p) const { return d_tables_.as<void*>() + (a * kPtrs + p) * cap_; }
  const int32_t* dev_int(int a, Int i) const {
    return reinterpret_cast<const int32_t*>(d_tables_.as<char>() + ptr_bytes()) + (a * kInts + i) * cap_;
  }
  size_t ptr_bytes() const { return attn_layers_.size() * kPtrs * cap_ * sizeof(void*); }

  DeviceModel& model_;
  std::function<comm::Communicator&(comm::Communicator&)> exchange_;
  std::vector<int> attn_layers_;
  int64_t cap_ = 0;  // rows the buffers below hold
  DeviceBuffer d_q_, d_kv_out_, d_kv_in_, d_part_, d_theirs_, d_ws_, d_tables_;
  std::vector<char> host_tables_;
  std::vector<float> h_q_, h_kv_out_, h_kv_in_, h_part_;  // the MPI path's staging
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
  host_tables_.assign(ptr_bytes() + attn_layers_.size() * kInts * cap_ * sizeof(int32_t), 0);
  d_tables_ = DeviceBuffer(host_tables_.size(), "sharded decode tables");
}

void DeviceShardedDecodeEngine::fill_tables(int me, int driver, int64_t n, Sequence* const* seqs, const int* target) {
  for (size_t a = 0; a < attn_layers_.size(); ++a) {
    const int ai = static_cast<int>(a);
    int64_t j = 0;  // this rank's next compact append row (not the driver)
    for (int64_t b = 0; b < n; ++b) {
      DeviceLayerCache& l = gpu(seqs[b]).st.seq.layers[attn_layers_[a]];
      const bool mine = target[b] == me;
      if (mine) model_.reserve_kv(l, l.kv_rows + 1);  // before the step's launches (it may wait)
      const int64_t rows = l.kv_rows + (mine ? 1 : 0);
      host_ptr(ai, AttendK)[b] = rows ? l.k.get() : nullptr;
      host_ptr(ai, AttendV)[b] = rows ? l.v.get() : nullptr;
      host_int(ai, AttendLen)[b] = static_cast<int32_t>(rows);
      const int64_t slot = me == driver ? b : (mine ? j++ : -1);
      if (slot < 0) continue;
      host_ptr(ai, AppendK)[slot] = mine ? l.k.get() : nullptr;
      host_ptr(ai, AppendV)[slot] = mine ? l.v.get() : nullptr;
      host_int(ai, AppendRow)[slot] = static_cast<int32_t>(l.kv_rows);
    }
  }
  // A pageable copy: it waits for the previous step's kernels that read the tables.
  check(cudaMemcpy(d_tables_.get(), host_tables_.data(), host_tables_.size(), cudaMemcpyHostToDevice),
        "sharded decode tables upload");
}

void DeviceShardedDecodeEngine::step(comm::Communicator& group, int driver, const int32_t* ids, int64_t n,
                                     Sequence* const* seqs, const int* target, const kernels::SamplingParams* params,
                                     const uint64_t* stream, const uint64_t* step, int32_t* out) {
  const int me = group.rank();
  comm::Communicator& x = exchange_(group);
  reserve(n);
  fill_tables(me, driver, n, seqs, target);
  if (me == driver) {
    std::vector<DeviceSequence*> ds(n);
    for (int64_t b = 0; b < n; ++b) ds[b] = &gpu(seqs[b]).st.seq;
    const float* h = model_.decode_step(ids, n, ds.data(),
                                        [&](int layer, int64_t rows, const float* d_qkv, int64_t ld, float* d_acc,
                                            float* d_m, float* d_l) {
                                          const int a = static_cast<int>(
                                              std::find(attn_layers_.begin(), attn_layers_.end(), layer) -
                                              attn_layers_.begin());
                                          attend(x, driver, a, rows, target, d_qkv, ld, d_acc, d_m, d_l);
                                        });
    model_.sample(h, n, params, stream, step, out);
  } else {
    for (size_t a = 0; a < attn_layers_.size(); ++a)
      attend(x, driver, static_cast<int>(a), n, target, nullptr, 0, nullptr, nullptr, nullptr);
  }
  for (int64_t b = 0; b < n; ++b)
    if (target[b] == me)
      for (int layer : attn_layers_) gpu(seqs[b]).st.seq.layers[layer].kv_rows += 1;
}

void DeviceShardedDecodeEngine::attend(comm::Communicator& x, int drv, int a, int64_t n, const int* target,
                                       const float* d_qkv, int64_t ld, float* d_acc, float* d_m, float* d_l) {
  const ModelConfig& c = model_.config();
  const int64_t qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim, Hq = c.num_heads;
  const int64_t part = n * (qd + 2 * Hq);
  const int P = x.size(), me = x.rank();
  const bool dev = x.memory_space() == comm::MemorySpace::cuda;
  const cudaStream_t s = model_.stream();
  const DType dtype = model_.kv_cache_dtype();
  float* q = d_q_.as<float>();

  // 1. Every rank gets the queries.
  if (me == drv)
    check(cudaMemcpy2DAsync(q, qd * 4, d_qkv, ld * 4, qd * 4, n, cudaMemcpyDeviceToDevice, s), "query copy");
  {
    auto _ = x.counter_scope(ShardedDecoder::kQueryLabel);
    if (dev) {
      x.broadcast(q, n * qd, drv);
    } else {
      h_q_.resize(n * qd);
      if (me == drv) check(cudaMemcpy(h_q_.data(), q, n * qd * 4, cudaMemcpyDeviceToHost), "query download");
      x.broadcast(h_q_.data(), h_q_.size(), drv);
      if (me != drv) check(cudaMemcpy(q, h_q_.data(), n * qd * 4, cudaMemcpyHostToDevice), "query upload");
    }
  }

  // 2. Each new K/V row to the rank that stores it: one message per rank, rows in batch order.
  std::vector<comm::Request> sends;
  if (me == drv) {
    kc::kv_append(d_qkv + qd, d_qkv + qd + kvd, ld, n, kvd, dev_ptr(a, AppendK), dev_ptr(a, AppendV),
                  dev_int(a, AppendRow), dtype, s);
    std::vector<int64_t> first(P + 1, 0);  // rank r's rows are [first[r], first[r+1]) of d_kv_out_
    for (int64_t b = 0; b < n; ++b)
      if (target[b] != me) ++first[target[b] + 1];
    for (int r = 0; r < P; ++r) first[r + 1] += first[r];
    std::vector<int64_t> next(first.begin(), first.end() - 1);
    float* outgoing = d_kv_out_.as<float>();
    for (int64_t b = 0; b < n; ++b)  // k and v are adjacent in a q | k | v row
      if (target[b] != me)
        check(cudaMemcpyAsync(outgoing + next[target[b]]++ * 2 * kvd, d_qkv + b * ld + qd, 2 * kvd * 4,
                              cudaMemcpyDeviceToDevice, s),
              "K/V row copy");
    const float* src = outgoing;
    if (!dev && first[P] > 0) {
      h_kv_out_.resize(first[P] * 2 * kvd);
      check(cudaMemcpy(h_kv_out_.data(), outgoing, h_kv_out_.size() * 4, cudaMemcpyDeviceToHost), "K/V rows download");
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
          check(cudaMemcpy(rows, h_kv_in_.data(), h_kv_in_.size() * 4, cudaMemcpyHostToDevice), "K/V rows upload");
        }
      }
      kc::kv_append(rows, rows + kvd, 2 * kvd, mine, kvd, dev_ptr(a, AppendK), dev_ptr(a, AppendV),
                    dev_int(a, AppendRow), dtype, s);
    }
  }

  // 3. Partials of every query over this rank's shard of its document, in one
  //    launch: all keys are earlier (or the token itself), so no mask.
  const kernels::AttentionShape shape{c.num_heads, c.num_kv_heads, c.head_dim};
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  float *acc = d_part_.as<float>(), *m = acc + n * qd, *l = m + n * Hq;
  kc::attention_decode(shape, q, qd, n, dev_ptr(a, AttendK), dev_ptr(a, AttendV), dtype, dev_int(a, AttendLen), scale,
                       acc, m, l, kernels::Workspace{d_ws_.get(), d_ws_.bytes()}, s);

  // 4. The driver merges every rank's partials, in rank order.
  if (me != drv) {
    auto _ = x.counter_scope(ShardedDecoder::kPartialLabel);
    if (dev) {
      x.send(acc, part, drv);
    } else {
      h_part_.resize(part);
      check(cudaMemcpy(h_part_.data(), acc, part * 4, cudaMemcpyDeviceToHost), "partials download");
      x.send(h_part_.data(), part, drv);
    }
    return;
  }
  kc::attention_init(shape, n, d_acc, d_m, d_l, s);
  for (int r = 0; r < P; ++r) {
    const float* src = acc;
    if (r != me) {
      auto _ = x.counter_scope(ShardedDecoder::kPartialLabel);
      float* theirs = d_theirs_.as<float>();
      if (dev) {
        x.recv(theirs, part, r);
      } else {
        h_part_.resize(part);
        x.recv(h_part_.data(), part, r);
        // A pageable upload: it waits for the merge still reading the previous rank's partials.
        check(cudaMemcpy(theirs, h_part_.data(), part * 4, cudaMemcpyHostToDevice), "partials upload");
      }
      src = theirs;
    }
    kc::attention_merge(shape, n, src, src + n * qd, src + n * qd + n * Hq, d_acc, d_m, d_l, s);
  }
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
