// Sequence-parallel forward on GPUs (CUDA builds): the algorithm of
// sequence_parallel.h with the GPU engine's phases (model/device_model.h)
// between the same exchanges (segment_exchange.h). This version stages the
// exchanged data (conv halos, segment states, K/V blocks) through host
// memory and an MPI communicator (`--comm mpi`), so several ranks may share
// one GPU; activations stay on the device. With `--comm nccl` the K/V ring
// (most of the traffic) runs over NCCL on device buffers instead.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "comm/communicator.h"
#include "model/device_buffer.h"
#include "runtime/layout.h"

namespace ringscan {

class DeviceModel;

// One of this rank's segments and its residual stream on the device.
struct DevicePiece {
  int segment = 0;
  Segment seg;
  DeviceBuffer hidden;  // [seg.len, hidden_size] (final hidden states after run())
  const float* d_hidden() const { return hidden.as<float>(); }
};

class DeviceSequenceParallelForward {
 public:
  // comm must be a host-memory (MPI) communicator: an Error says so otherwise.
  // ring_comm (optional): a device-memory (NCCL) communicator over the same
  // ranks for the K/V ring, which then passes device buffers directly (`--comm
  // nccl`; never run on two GPUs); halos and states still go through comm.
  DeviceSequenceParallelForward(DeviceModel& model, comm::Communicator& comm, SequenceLayout layout,
                                comm::Communicator* ring_comm = nullptr);
  ~DeviceSequenceParallelForward();

  // ids_of_segment(s) gives the ids of each of this rank's segments. Returns
  // its pieces with the final hidden states (after norm_f) on the device.
  std::vector<DevicePiece> run(const std::function<std::vector<int32_t>(const Segment&)>& ids_of_segment);

  const SequenceLayout& layout() const { return layout_; }

 private:
  struct Scratch;
  void mamba_layer(int layer, std::vector<DevicePiece>& pieces);
  void attention_layer(int layer, std::vector<DevicePiece>& pieces);
  void mlp_layer(int layer, std::vector<DevicePiece>& pieces);

  DeviceModel& model_;
  comm::Communicator& comm_;
  comm::Communicator* ring_comm_;
  SequenceLayout layout_;
  std::vector<int> mine_;             // this rank's segment indices
  std::unique_ptr<Scratch> scratch_;  // device buffers sized for this rank's segments
};

}  // namespace ringscan
