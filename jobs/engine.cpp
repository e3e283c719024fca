#include "jobs/engine.h"

#include <algorithm>

#include "comm/mpi_communicator.h"
#if defined(RINGSCAN_WITH_CUDA) && defined(RINGSCAN_HAVE_NCCL)
#include "comm/nccl_communicator.h"
#endif
#include "model/memory_plan.h"
#include "runtime/scheduler.h"
#include "util/error.h"
#ifdef RINGSCAN_WITH_CUDA
#include "model/device_model.h"
#endif

namespace ringscan {

JobEngine::JobEngine(const std::string& device, const std::string& comm, int local_rank)
    : choice_(choose_device(device, local_rank)), comm_(comm) {
  if (comm != "auto" && comm != "mpi" && comm != "nccl") throw Error("--comm " + comm + " is not one of auto, mpi, nccl");
  if (comm == "nccl" && !on_gpu())
    throw Error("--comm nccl needs the GPU engine, and this rank runs on the CPU (" + choice_.why_cpu + ")");
}

void JobEngine::agree(comm::Communicator& world) {
  int64_t some_cpu = on_gpu() ? 0 : 1;
  world.all_reduce(&some_cpu, 1, comm::ReduceOp::max);
  if (on_gpu() && some_cpu) {
    choice_ = DeviceChoice{};
    choice_.label = "cpu";
    choice_.why_cpu = "not every rank has a usable GPU";
  }
  if (comm_ == "nccl" && !on_gpu()) throw Error("--comm nccl needs the GPU engine on every rank: not every rank has a usable GPU");
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

comm::Communicator* JobEngine::ring_comm(comm::Communicator& group) {
#if defined(RINGSCAN_WITH_CUDA) && defined(RINGSCAN_HAVE_NCCL)
  if (comm_ != "nccl" || !gpu_) return nullptr;
  auto& slot = ring_comms_[group.size()];
  if (!slot) {
    auto* mpi = dynamic_cast<comm::MpiCommunicator*>(&group);
    if (!mpi) throw Error("--comm nccl: a sequence-parallel group must be an MPI communicator to start NCCL from");
    slot = comm::NcclCommunicator::create(mpi->mpi_comm());
  }
  return slot.get();
#else
  (void)group;
  return nullptr;
#endif
}

DocumentValues JobEngine::compute_sp(Model& model, comm::Communicator& group, const SequenceLayout& layout,
                                     const std::function<std::vector<int32_t>(const Segment&)>& segment_ids,
                                     const WantedOutputs& want) {
#ifdef RINGSCAN_WITH_CUDA
  if (gpu_) return compute_document_sp_on_device(*gpu_, group, layout, segment_ids, want, ring_comm(group));
#endif
  return compute_document_sp(model, group, layout, segment_ids, want);
}

}  // namespace ringscan
