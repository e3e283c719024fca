// The GPU decode engines' shared tables and exchanges (device_decode_exchange.h).
#include "runtime/cuda/device_decode_exchange.h"

#include <algorithm>

#include "model/cuda/cuda_check.h"

namespace ringscan {

namespace kc = kernels::cuda;

DecodeKvTables::DecodeKvTables(const ModelConfig& c) {
  for (size_t i = 0; i < c.layers.size(); ++i)
    if (c.layers[i] == LayerKind::Attention) layers_.push_back(static_cast<int>(i));
}

int DecodeKvTables::index_of(int layer) const {
  return static_cast<int>(std::find(layers_.begin(), layers_.end(), layer) - layers_.begin());
}

void DecodeKvTables::reserve(int64_t n) {
  if (n <= cap_) return;
  cap_ = n;
  host_.assign(ptr_bytes() + layers_.size() * kInts * cap_ * sizeof(int32_t), 0);
  d_ = DeviceBuffer(std::max<size_t>(host_.size(), 1), "decode K/V tables");
}

void DecodeKvTables::fill(const DeviceModel& model, int me, int driver, int64_t n, DeviceSequence* const* seqs,
                          const int* target) {
  reserve(n);
  for (size_t a = 0; a < layers_.size(); ++a) {
    const int ai = static_cast<int>(a);
    int64_t j = 0;  // this rank's next compact append row (not the driver)
    for (int64_t b = 0; b < n; ++b) {
      DeviceLayerCache& l = seqs[b]->layers[layers_[a]];
      const bool mine = target[b] == me;
      if (mine) model.reserve_kv(l, l.kv_rows + 1);  // before the step's launches (it may wait)
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
  cuda_check(cudaMemcpy(d_.get(), host_.data(), host_.size(), cudaMemcpyHostToDevice), "decode tables upload");
}

void DecodeExchange::broadcast_queries(comm::Communicator& x, int drv, const float* d_qkv, int64_t ld, int64_t n,
                                       int64_t qd, float* d_q, cudaStream_t s, const char* label) {
  const int me = x.rank();
  if (me == drv)
    cuda_check(cudaMemcpy2DAsync(d_q, qd * 4, d_qkv, ld * 4, qd * 4, n, cudaMemcpyDeviceToDevice, s), "query copy");
  if (x.size() == 1) return;
  auto _ = x.counter_scope(label);
  if (x.memory_space() == comm::MemorySpace::cuda) {
    x.broadcast(d_q, n * qd, drv);
    return;
  }
  h_q_.resize(n * qd);
  if (me == drv) cuda_check(cudaMemcpy(h_q_.data(), d_q, n * qd * 4, cudaMemcpyDeviceToHost), "query download");
  x.broadcast(h_q_.data(), h_q_.size(), drv);
  if (me != drv) cuda_check(cudaMemcpy(d_q, h_q_.data(), n * qd * 4, cudaMemcpyHostToDevice), "query upload");
}

void DecodeExchange::merge_partials(comm::Communicator& x, int drv, const kernels::AttentionShape& shape, int64_t n,
                                    const float* d_part, float* d_theirs, float* d_acc, float* d_m, float* d_l,
                                    cudaStream_t s, const char* label) {
  const int64_t qd = shape.q_heads * shape.head_dim, Hq = shape.q_heads, part = n * (qd + 2 * Hq);
  const int P = x.size(), me = x.rank();
  const bool dev = x.memory_space() == comm::MemorySpace::cuda;
  if (me != drv) {
    auto _ = x.counter_scope(label);
    if (dev) {
      x.send(d_part, part, drv);
    } else {
      h_part_.resize(part);
      cuda_check(cudaMemcpy(h_part_.data(), d_part, part * 4, cudaMemcpyDeviceToHost), "partials download");
      x.send(h_part_.data(), part, drv);
    }
    return;
  }
  kc::attention_init(shape, n, d_acc, d_m, d_l, s);
  for (int r = 0; r < P; ++r) {
    const float* src = d_part;
    if (r != me) {
      auto _ = x.counter_scope(label);
      if (dev) {
        x.recv(d_theirs, part, r);
      } else {
        h_part_.resize(part);
        x.recv(h_part_.data(), part, r);
        // A pageable upload: it waits for the merge still reading the previous rank's partials.
        cuda_check(cudaMemcpy(d_theirs, h_part_.data(), part * 4, cudaMemcpyHostToDevice), "partials upload");
      }
      src = d_theirs;
    }
    kc::attention_merge(shape, n, src, src + n * qd, src + n * qd + n * Hq, d_acc, d_m, d_l, s);
  }
}

}  // namespace ringscan
