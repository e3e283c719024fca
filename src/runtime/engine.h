// The engine a rank computes with, for the batch jobs and `forward` (DESIGN
// §2-3): which backend runs (--device auto|cpu|cuda, runtime/device_select.h),
// decided the same on every rank: the GPU only when every rank has a usable
// one (a run mixing backends would mix bf16 and fp32 GEMM results); `auto`
// otherwise runs on the CPU and says why, `cuda` fails with the reason. Also
// how sequence-parallel groups exchange (--comm). Callers say what to compute;
// which backend computes it is this engine's business (backend.h), so jobs and
// cli build the same with or without CUDA.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "model/model.h"
#include "runtime/decode_engine.h"
#include "runtime/device_select.h"
#include "runtime/document_values.h"
#include "runtime/forwarded_segments.h"
#include "runtime/layout.h"
#include "runtime/prefix_decode_engine.h"
#include "runtime/scheduler.h"
#include "runtime/sharded_decode_engine.h"

namespace ringscan {

class ComputeBackend;

class Engine {
 public:
  // This rank's choice of --device, and --comm: how sequence-parallel ranks
  // exchange. "mpi": MPI through host memory (on GPUs the exchanged data is
  // staged through the host, so ranks may share a GPU); "nccl" (GPU backend
  // only): halos, state scan and K/V ring over NCCL on device buffers, one GPU
  // per rank; "auto": nccl when every rank has a GPU of its own, else mpi.
  // Throws Error when this rank cannot honour them (call inside
  // check_collectively, runtime/mpi_context.h).
  Engine(const std::string& device, const std::string& comm, int local_rank);
  // Collective over world (MPI_COMM_WORLD's ranks), after every rank
  // constructed its engine: the GPU only if every rank chose one, and the
  // communicator --comm resolves to. --comm nccl without a GPU on every rank,
  // or with more ranks on a node than its GPUs, is an Error on every rank
  // (call inside check_collectively, runtime/mpi_context.h).
  void agree(comm::Communicator& world);
  // "nccl" or "mpi": what sequence-parallel groups exchange over (after
  // agree(); before it, "mpi" unless --comm nccl). Logs and output attributes.
  const std::string& comm_backend() const { return resolved_comm_; }
  ~Engine();
  Engine(Engine&&) noexcept;
  Engine& operator=(Engine&&) noexcept;

  bool on_gpu() const { return choice_.backend == Backend::Cuda; }
  // "cpu" or "cuda:0 (NVIDIA H200)" (this rank's), and why not a GPU (auto on the CPU).
  const std::string& label() const { return choice_.label; }
  const std::string& why_cpu() const { return choice_.why_cpu; }
  // "fp32" on the CPU; on the GPU "bf16" (inputs; fp32 accumulation) unless
  // set_gemm_inputs("fp32") before prepare().
  std::string gemm_inputs() const { return on_gpu() ? gemm_ : "fp32"; }
  // --gemm-inputs bf16|fp32: what the GPU engine rounds GEMM inputs to (fp32:
  // slower, and agrees with the CPU engine to round-off; its KV cache is then
  // fp32 too). Before prepare(); no effect on the CPU, which multiplies fp32.
  // Throws Error on another value.
  void set_gemm_inputs(const std::string& g);

  // Binds the engine to `model` (which must outlive it) and, on the GPU,
  // uploads its weights. Everything below needs it first.
  void prepare(Model& model);

  // Tokens one rank can hold (runtime/scheduler.h's budget), from the
  // backend's memory plan: on the CPU, host memory (memory_bytes, or this
  // node's share); on a GPU, its memory (memory_bytes, or 90% of what is free
  // plus what the engine already holds, shared by the node's ranks on that
  // GPU) against model/memory_plan.h's DeviceMemoryPlan. cost: for messages.
  int64_t token_budget(uint64_t memory_bytes, int ranks_on_node, MemoryCost* cost) const;
  // One document on this rank.
  DocumentValues compute(const std::vector<int32_t>& ids, const WantedOutputs& want);
  // One document's log-probs scored with a sliding window of at most `window` tokens
  // moved by `stride` (runtime/score_windows.h), each window on this rank.
  DocumentValues compute_windowed(const std::vector<int32_t>& ids, int64_t window, int64_t stride);
  // Short documents at once (a packed batch of at most one block of tokens).
  std::vector<DocumentValues> compute_packed(const std::vector<std::vector<int32_t>>& docs, const WantedOutputs& want);
  // One document sequence-parallel over `group` (every rank of it calls
  // this). segment_ids(s) returns the ids of this rank's segment s plus, when
  // it is not the last, the first id of the next one (the target of its last
  // position). Values are complete on group rank 0; other ranks get empty ones.
  DocumentValues compute_sp(comm::Communicator& group, const SequenceLayout& layout,
                            const std::function<std::vector<int32_t>(const Segment&)>& segment_ids,
                            const WantedOutputs& want);
  // The forward of compute_sp alone, for callers that read the final hidden
  // states themselves (`forward` prints each position's logits). segment_ids(s):
  // segment s's ids only. keep_decode_state: also keep what a ShardedDecoder
  // continues from (ForwardedSegments::take_decode_sequence(); take_decode_state(),
  // the host form, downloaded from the GPU engine).
  std::unique_ptr<ForwardedSegments> forward_sp(comm::Communicator& group, const SequenceLayout& layout,
                                                const std::function<std::vector<int32_t>(const Segment&)>& segment_ids,
                                                bool keep_decode_state);
  // The engine a single-rank Decoder runs on; its prefill also gives a
  // prompt's logits (`forward`).
  DecodeEngine& decode_engine();
  // The engine a ShardedDecoder (decode.h) runs on over a sequence-parallel
  // group, after forward_sp with keep_decode_state or by its own prefills.
  ShardedDecodeEngine& sharded_decode_engine();
  // The engine a PrefixSharedDecoder (prefix_decode.h: `ask`, `summarize
  // --state`) runs on over a group, from a saved or kept prefix state.
  PrefixDecodeEngine& prefix_decode_engine();

 private:
  ComputeBackend& backend() const;

  DeviceChoice choice_;
  std::string comm_;
  std::string resolved_comm_;
  std::string gemm_ = "bf16";
  const Model* model_ = nullptr;
  std::unique_ptr<ComputeBackend> backend_;
};

}  // namespace ringscan
