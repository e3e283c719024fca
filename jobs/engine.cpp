#include "jobs/engine.h"

#include <algorithm>

#include "model/memory_plan.h"
#include "runtime/scheduler.h"
#include "util/error.h"
#ifdef RINGSCAN_WITH_CUDA
#include "model/device_model.h"
#endif

namespace ringscan {

JobEngine::JobEngine(const std::string& option, int local_rank) : choice_(choose_device(option, local_rank)) {}

void JobEngine::check_comm_option(const std::string& comm) {
  if (comm == "auto" || comm == "mpi") return;
  if (comm == "nccl")
    throw Error("--comm nccl: sequence parallelism over NCCL is not in this version; --comm mpi (the default) "
                "exchanges through host memory");
  throw Error("--comm " + comm + " is not one of auto, mpi, nccl");
}

void JobEngine::agree(comm::Communicator& world) {
  int64_t some_cpu = on_gpu() ? 0 : 1;
  world.all_reduce(&some_cpu, 1, comm::ReduceOp::max);
  if (on_gpu() && some_cpu) {
    choice_ = DeviceChoice{};
    choice_.label = "cpu";
    choice_.why_cpu = "not every rank has a usable GPU";
  }
}

JobEngine::~JobEngine() = default;
JobEngine::JobEngine(JobEngine&&) noexcept = default;
JobEngine& JobEngine::operator=(JobEngine&&) noexcept = default;

void JobEngine::prepare(const Model& model) {
#ifdef RINGSCAN_WITH_CUDA
  if (on_gpu()) gpu_ = std::make_shared<DeviceModel>(model, DeviceModelOptions{});
#else
  (void)model;
#endif
}

int64_t JobEngine::token_budget(const Model& model, uint64_t memory_bytes, int ranks_on_node,
                                uint64_t* per_token_bytes) const {
  const ModelConfig& c = model.config();
#ifdef RINGSCAN_WITH_CUDA
  if (gpu_) {
    uint64_t memory = memory_bytes;
    if (memory == 0) {
      const int gpus = std::max(1, choice_.gpus_visible);
      const uint64_t sharing = static_cast<uint64_t>((std::max(1, ranks_on_node) + gpus - 1) / gpus);
      memory = (device_memory().free_bytes + gpu_->weight_bytes() + gpu_->arena_bytes()) / 10 * 9 / sharing;
    }
    // A segment's plan at two lengths gives the per-token and the fixed costs.
    const DeviceMemoryPlan a = plan_device_memory(c, 1024, 2, gpu_->block_tokens()),
                           b = plan_device_memory(c, 2048, 2, gpu_->block_tokens());
    const uint64_t per_token = std::max<uint64_t>((b.total() - a.total()) / 1024, 1), fixed = a.total() - per_token * 1024;
    if (per_token_bytes) *per_token_bytes = per_token;
    return memory <= fixed ? 1 : static_cast<int64_t>((memory - fixed) / per_token);
  }
#endif
  return ringscan::token_budget(c, model.checkpoint().total_bytes(),
                                memory_bytes ? memory_bytes : default_memory_per_rank(ranks_on_node), per_token_bytes);
}

DocumentValues JobEngine::compute(Model& model, const std::vector<int32_t>& ids, const WantedOutputs& want) {
#ifdef RINGSCAN_WITH_CUDA
  if (gpu_) return compute_document_on_device(*gpu_, ids, want);
#endif
  return compute_document(model, ids, want);
}

std::vector<DocumentValues> JobEngine::compute_packed(const Model& model, const std::vector<std::vector<int32_t>>& docs,
                                                      const WantedOutputs& want) {
#ifdef RINGSCAN_WITH_CUDA
  if (gpu_) return compute_documents_packed_on_device(*gpu_, docs, want);
#endif
  return compute_documents_packed(model, docs, want);
}

DecodeEngine& JobEngine::decode_engine(Model& model) {
  if (!decode_) {
#ifdef RINGSCAN_WITH_CUDA
    if (gpu_) decode_ = make_device_decode_engine(*gpu_);
#endif
    if (!decode_) decode_ = std::make_unique<CpuDecodeEngine>(model);
  }
  return *decode_;
}

DocumentValues JobEngine::compute_sp(Model& model, comm::Communicator& group, const SequenceLayout& layout,
                                     const std::function<std::vector<int32_t>(const Segment&)>& segment_ids,
                                     const WantedOutputs& want) {
#ifdef RINGSCAN_WITH_CUDA
  if (gpu_) return compute_document_sp_on_device(*gpu_, group, layout, segment_ids, want);
#endif
  return compute_document_sp(model, group, layout, segment_ids, want);
}

}  // namespace ringscan
