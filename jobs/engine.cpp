#include "jobs/engine.h"

#include <algorithm>

#include "util/error.h"
#ifdef RINGSCAN_WITH_CUDA
#include "model/device_model.h"
#endif

namespace ringscan {

JobEngine::JobEngine(const std::string& option, bool has_gpu_engine, const std::string& job, int local_rank) {
  if (!has_gpu_engine && option == "cuda")
    throw Error("--device cuda: " + job + " has no GPU engine yet; run it with --device cpu (or auto)");
  if (!has_gpu_engine && option != "auto" && option != "cpu")
    throw Error("--device " + option + " is not one of auto, cpu, cuda");
  choice_ = choose_device(has_gpu_engine ? option : "cpu", local_rank);
  if (!has_gpu_engine && option == "auto") choice_.why_cpu = job + " runs on the CPU engine in this version";
}

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

uint64_t JobEngine::memory_per_rank(uint64_t host_bytes, int ranks_on_node) const {
#ifdef RINGSCAN_WITH_CUDA
  if (on_gpu()) {
    // Ranks of a node share its GPUs round-robin (device_select.h): 90% of
    // the free memory (weights and arenas already taken) split among the
    // ranks on this GPU. The scheduler subtracts the checkpoint's size from
    // what it is given, so it is added back.
    const DeviceMemory m = device_memory();
    const int gpus = std::max(1, choice_.gpus_visible);
    const uint64_t sharing = static_cast<uint64_t>((std::max(1, ranks_on_node) + gpus - 1) / gpus);
    return m.free_bytes / 10 * 9 / sharing + (gpu_ ? gpu_->weight_bytes() : 0);
  }
#else
  (void)ranks_on_node;
#endif
  return host_bytes;
}

DocumentValues JobEngine::compute(Model& model, const std::vector<int32_t>& ids, const WantedOutputs& want) {
#ifdef RINGSCAN_WITH_CUDA
  if (gpu_) return compute_document_on_device(*gpu_, ids, want);
#endif
  return compute_document(model, ids, want);
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
