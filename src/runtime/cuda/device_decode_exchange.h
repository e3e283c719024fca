// What the GPU decode engines that spread attention over a group share
// (device_sharded_decode.cpp, device_prefix_decode.cpp): the step's
// per-attention-layer pointer tables for kv_append and attention_decode, and
// the step's exchanges of queries and attention partials over an exchange
// communicator: device buffers on a device communicator (NCCL), staged
// through host memory on the MPI one (ranks may share a GPU).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "comm/communicator.h"
#include "kernels/attention.h"
#include "model/device_model.h"

namespace ringscan {

// Per attention layer, arrays of n entries, filled on the host and uploaded
// once per step: where each row's new K/V row goes (Append*: on the driver all
// n rows, null where another rank stores it; on the other ranks this rank's
// rows only, in batch order) and which cache each query attends (Attend*),
// with its rows after the append.
class DecodeKvTables {
 public:
  enum Ptr { AppendK, AppendV, AttendK, AttendV, kPtrs };
  enum Int { AppendRow, AttendLen, kInts };
  explicit DecodeKvTables(const ModelConfig& c);
  const std::vector<int>& attention_layers() const { return layers_; }
  // Index of a model layer among the attention layers.
  int index_of(int layer) const;
  // Room for n rows (grows, never shrinks).
  void reserve(int64_t n);
  // seqs[b]: row b's sequence on this rank; target[b]: the rank that stores
  // its new row. Grows this rank's caches that take a row (model.reserve_kv,
  // before the step's launches: it may wait) and uploads the tables with a
  // pageable copy, which waits for the previous step's kernels reading them.
  void fill(const DeviceModel& model, int me, int driver, int64_t n, DeviceSequence* const* seqs, const int* target);
  void* const* dev_ptr(int a, Ptr p) const { return d_.as<void*>() + (a * kPtrs + p) * cap_; }
  const int32_t* dev_int(int a, Int i) const {
    return reinterpret_cast<const int32_t*>(d_.as<char>() + ptr_bytes()) + (a * kInts + i) * cap_;
  }

 private:
  void** host_ptr(int a, Ptr p) { return reinterpret_cast<void**>(host_.data()) + (a * kPtrs + p) * cap_; }
  int32_t* host_int(int a, Int i) { return reinterpret_cast<int32_t*>(host_.data() + ptr_bytes()) + (a * kInts + i) * cap_; }
  size_t ptr_bytes() const { return layers_.size() * kPtrs * cap_ * sizeof(void*); }
  std::vector<int> layers_;
  int64_t cap_ = 0;
  std::vector<char> host_;
  DeviceBuffer d_;
};

// The step's exchanges around each attention layer, booked under the caller's labels.
class DecodeExchange {
 public:
  // The driver's n queries (the first qd columns of d_qkv's rows, ld apart)
  // into d_q [n, qd] on every rank.
  void broadcast_queries(comm::Communicator& x, int drv, const float* d_qkv, int64_t ld, int64_t n, int64_t qd,
                         float* d_q, cudaStream_t s, const char* label);
  // d_part: this rank's partials of the n queries, [acc | m | l]
  // (runtime/attention_partials.h's layout). A rank other than drv sends them
  // to drv; drv sets (d_acc, d_m, d_l) to the merge of every rank's in rank
  // order, its own included, receiving the others' into d_theirs (as large).
  void merge_partials(comm::Communicator& x, int drv, const kernels::AttentionShape& shape, int64_t n,
                      const float* d_part, float* d_theirs, float* d_acc, float* d_m, float* d_l, cudaStream_t s,
                      const char* label);

 private:
  std::vector<float> h_q_, h_part_;  // the MPI path's staging
};

}  // namespace ringscan
