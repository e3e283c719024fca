// Sequence-parallel forward on GPUs (CUDA builds): the algorithm of
// sequence_parallel.h with the GPU engine's phases (model/device_model.h)
// between the same exchanges (segment_exchange.h), on either communicator:
//  - device memory (NCCL, `--comm nccl`, one GPU per rank): conv halos, the
//    O(log P) state scan (its combine on the device) and the K/V ring pass
//    device buffers; nothing goes through the host. The ring's transfer of the
//    next block runs on the communicator's stream while the compute stream
//    folds the current one; the compute stream waits for it on an event.
//  - host memory (MPI, `--comm mpi`): the exchanged data (halo rows, segment
//    states and decays, K/V blocks) is staged through host memory, so several
//    ranks may share one GPU; activations stay on the device.
// Either way the segment decays are computed on the device (only [heads]
// floats per segment leave it on the MPI path).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "comm/communicator.h"
#include "model/device_buffer.h"
#include "model/device_model.h"
#include "runtime/layout.h"
#include "runtime/sequence_parallel.h"
#include "runtime/sharded_decode_engine.h"

namespace ringscan {

// One of this rank's segments and its residual stream on the device.
struct DevicePiece {
  int segment = 0;
  Segment seg;
  DeviceBuffer hidden;  // [seg.len, hidden_size] (final hidden states after run())
  const float* d_hidden() const { return hidden.as<float>(); }
};

// What decoding the sequence further needs (sequence_parallel.h's
// SequenceParallelDecodeState, kept on the device), as this rank holds it:
//  - every rank: per attention layer, its shard of the KV cache (the K rows,
//    rotated when RoPE is on, and V rows of its own segments) in seq's
//    DeviceLayerCache k / v / kv_rows, in the decode cache's dtype
//    (DeviceModel::kv_cache_dtype()); their positions are not kept.
//  - the driver (the owner of the last segment): per Mamba layer, the conv
//    history and SSM state after the whole sequence in seq's caches, and the
//    last position's final hidden row (after norm_f).
// On a device communicator (NCCL) nothing of it passes through the host.
struct DeviceSequenceParallelDecodeState {
  int driver = 0;
  int64_t length = 0;
  DeviceSequence seq;        // seq.position = length
  DeviceBuffer last_hidden;  // [hidden], on the driver only
};

class DeviceSequenceParallelForward {
 public:
  // comm: host (MPI) or device (NCCL) memory. A device communicator must
  // order its work after the model's stream (NcclCommunicator::set_compute_stream).
  DeviceSequenceParallelForward(DeviceModel& model, comm::Communicator& comm, SequenceLayout layout);
  ~DeviceSequenceParallelForward();

  // ids_of_segment(s) gives the ids of each of this rank's segments. Returns
  // its pieces with the final hidden states (after norm_f) on the device.
  std::vector<DevicePiece> run(const std::function<std::vector<int32_t>(const Segment&)>& ids_of_segment);

  const SequenceLayout& layout() const { return layout_; }

  // Before run(): also keep what decoding needs (off by default).
  void set_keep_decode_state(bool keep) { keep_decode_ = keep; }
  // After run() with keep on: this rank's part, moved out.
  DeviceSequenceParallelDecodeState take_decode_state();

  // Exposed communication: the time the compute stream had nothing to run
  // because it waited for an exchange, per layer (ms, summed over that layer's
  // exchanges), measured with timing events on the compute stream around each
  // wait. Off by default (events cost a little); valid after run().
  void set_measure_exposed(bool on) { measure_exposed_ = on; }
  const std::vector<double>& exposed_ms_by_layer() const { return exposed_ms_; }

 private:
  struct Scratch;
  void mamba_layer(int layer, std::vector<DevicePiece>& pieces);
  void attention_layer(int layer, std::vector<DevicePiece>& pieces);
  void mlp_layer(int layer, std::vector<DevicePiece>& pieces);

  // Keeping the decode state (device_sp_decode_state.cpp).
  void keep_begin();
  void keep_kv(int layer, const float* d_block, int64_t rows);
  // The driver's conv history: the last K-1 rows of [halo (K-1 rows) ; m rows of tail, pitch floats apart].
  void keep_conv_history(int layer, const float* d_halo, const float* d_tail, int64_t m, int64_t pitch);
  void keep_ssm_state(int layer, const float* state, bool on_host);
  void keep_last_hidden(const std::vector<DevicePiece>& pieces);

  struct Timing;
  // Marks the start / end of a wait of the compute stream for layer's exchange.
  void exposed_begin(int layer);
  void exposed_end(int layer);
  bool on_device() const { return comm_.memory_space() == comm::MemorySpace::cuda; }

  DeviceModel& model_;
  comm::Communicator& comm_;
  SequenceLayout layout_;
  bool measure_exposed_ = false;
  std::vector<double> exposed_ms_;
  std::unique_ptr<Timing> timing_;
  std::vector<int> mine_;             // this rank's segment indices
  std::unique_ptr<Scratch> scratch_;  // device buffers sized for this rank's segments
  bool keep_decode_ = false;
  DeviceSequenceParallelDecodeState decode_;
};

// The GPU ShardedDecodeEngine's sequence (runtime/cuda/device_sharded_decode.cpp)
// from a state the caller's prefill kept.
std::unique_ptr<ShardedDecodeEngine::Sequence> adopt_device_decode_state(DeviceSequenceParallelDecodeState st);

// The same state downloaded into the CPU engine's host form
// (SequenceParallelDecodeState: K/V rows widened to fp32, the driver's Mamba
// and conv states and last hidden row), for save_state (runtime/saved_state.h:
// `prefill --device cuda`). Waits for model's stream (device_saved_state.cpp).
SequenceParallelDecodeState download_decode_state(DeviceModel& model, const DeviceSequenceParallelDecodeState& st);

}  // namespace ringscan
