// Which engine a batch job (and `forward`) computes with (--device
// auto|cpu|cuda), decided the same on every rank: the CUDA engine only when
// every rank has a usable GPU (a run mixing engines would mix bf16 and fp32
// GEMM results); `auto` otherwise runs on the CPU and says why, `cuda` fails
// with the reason. Also how sequence-parallel groups exchange (--comm).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "jobs/document_compute.h"
#include "model/model.h"
#include "runtime/decode_engine.h"
#include "runtime/device_select.h"

namespace ringscan {

class DeviceModel;

class JobEngine {
 public:
  // This rank's choice of --device, and --comm: how sequence-parallel ranks
  // exchange. "auto" and "mpi": MPI (the GPU engine stages through host
  // memory, so ranks may share a GPU); "nccl" (GPU engine only): the K/V ring
  // over NCCL on device buffers, one GPU per rank (compiled, never run).
  // Throws Error when this rank cannot honour them (call inside
  // cli::check_collectively).
  JobEngine(const std::string& device, const std::string& comm, int local_rank);
  // Collective over world, after every rank constructed its engine: the GPU
  // only if every rank chose one (--comm nccl without it is an Error on every
  // rank: call inside cli::check_collectively).
  void agree(comm::Communicator& world);
  // The device-memory communicator for the K/V ring of a sequence-parallel
  // group (--comm nccl), made once per group size; null otherwise. Collective
  // over `group`.
  comm::Communicator* ring_comm(comm::Communicator& group);
  ~JobEngine();
  JobEngine(JobEngine&&) noexcept;
  JobEngine& operator=(JobEngine&&) noexcept;

  bool on_gpu() const { return choice_.backend == Backend::Cuda; }
  // "cpu" or "cuda:0 (NVIDIA H200)" (this rank's), and why not a GPU (auto on the CPU).
  const std::string& label() const { return choice_.label; }
  const std::string& why_cpu() const { return choice_.why_cpu; }
  // "fp32" on the CPU; "bf16" (inputs; fp32 accumulation) on the GPU.
  std::string gemm_inputs() const { return on_gpu() ? "bf16" : "fp32"; }

  // Uploads the weights when on the GPU (after the model is loaded).
  void prepare(const Model& model);
  // The GPU engine's model after prepare() on the GPU; null otherwise.
  DeviceModel* device_model() const { return gpu_.get(); }
  // Tokens one rank can hold (runtime/scheduler.h's budget), from the engine's
  // memory plan: on the CPU, host memory (memory_bytes, or this node's share);
  // on a GPU, its memory (memory_bytes, or 90% of what is free plus what the
  // engine already holds, shared by the node's ranks on that GPU) against
  // model/memory_plan.h's DeviceMemoryPlan. per_token_bytes: for messages.
  int64_t token_budget(const Model& model, uint64_t memory_bytes, int ranks_on_node, uint64_t* per_token_bytes) const;
  // One document on this rank, on the chosen engine.
  DocumentValues compute(Model& model, const std::vector<int32_t>& ids, const WantedOutputs& want);
  // The engine a single-rank Decoder runs on (after prepare()).
  DecodeEngine& decode_engine(Model& model);
  // Short documents at once (a packed batch of at most one block of tokens).
  std::vector<DocumentValues> compute_packed(const Model& model, const std::vector<std::vector<int32_t>>& docs,
                                             const WantedOutputs& want);
  // One document sequence-parallel over `group` (document_compute.h).
  DocumentValues compute_sp(Model& model, comm::Communicator& group, const SequenceLayout& layout,
                            const std::function<std::vector<int32_t>(const Segment&)>& segment_ids,
                            const WantedOutputs& want);

 private:
  DeviceChoice choice_;
  std::string comm_;
  // shared_ptr: destructible while DeviceModel is incomplete (CPU-only builds never make one).
  std::shared_ptr<DeviceModel> gpu_;
  std::map<int, std::unique_ptr<comm::Communicator>> ring_comms_;  // by group size
  std::unique_ptr<DecodeEngine> decode_;
};

}  // namespace ringscan
