// Inside the runtime: what Engine (engine.h) asks of the backend it chose
// (device_select.h's Backend names which; this is what computes).
// One implementation per backend: the CPU Model (cpu_backend.cpp) and the GPU
// engine (cuda/gpu_backend.cpp, CUDA builds only). Builds without CUDA link
// cpu_only/gpu_backend_absent.cpp instead, whose make_gpu_backend throws.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
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

using SegmentIds = std::function<std::vector<int32_t>(const Segment&)>;

class ComputeBackend {
 public:
  virtual ~ComputeBackend() = default;
  // Engine::token_budget.
  virtual int64_t token_budget(uint64_t memory_bytes, int ranks_on_node, MemoryCost* cost) const = 0;
  // One document on this rank, prefilled in memory-bounded blocks.
  virtual DocumentValues compute(const std::vector<int32_t>& ids, const WantedOutputs& want) = 0;
  // Short documents at once, their per-token GEMMs batched: the same values
  // as compute() of each.
  virtual std::vector<DocumentValues> compute_packed(const std::vector<std::vector<int32_t>>& docs,
                                                     const WantedOutputs& want) = 0;
  // Engine::forward_sp.
  virtual std::unique_ptr<ForwardedSegments> forward_sp(comm::Communicator& group, const SequenceLayout& layout,
                                                        const SegmentIds& segment_ids, bool keep_decode_state) = 0;
  // The engine a single-rank Decoder runs on; made once.
  virtual DecodeEngine& decode_engine() = 0;
  // The engine a ShardedDecoder runs on after forward_sp; made once.
  virtual ShardedDecodeEngine& sharded_decode_engine() = 0;
  // The engine a PrefixSharedDecoder (prefix_decode.h) runs on; made once.
  virtual PrefixDecodeEngine& prefix_decode_engine() = 0;
};

// model outlives the backend.
std::unique_ptr<ComputeBackend> make_cpu_backend(Model& model);
// Uploads the weights to the GPU `choice` made current. nccl: sequence-parallel
// groups exchange over NCCL on device buffers (--comm nccl, or auto with a GPU per rank).
// fp32_gemm: fp32 GEMM inputs and KV cache (Engine::set_gemm_inputs), else bf16.
std::unique_ptr<ComputeBackend> make_gpu_backend(const Model& model, const DeviceChoice& choice, bool nccl,
                                                 bool fp32_gemm);

}  // namespace ringscan
