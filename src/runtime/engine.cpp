#include "runtime/engine.h"

#include "comm/mpi_session.h"
#include "runtime/backend.h"
#include "runtime/score_windows.h"
#include "util/error.h"

namespace ringscan {

Engine::Engine(const std::string& device, const std::string& comm, int local_rank)
    : choice_(choose_device(device, local_rank)), comm_(comm), resolved_comm_(comm == "nccl" ? "nccl" : "mpi") {
  if (comm != "auto" && comm != "mpi" && comm != "nccl") throw Error("--comm " + comm + " is not one of auto, mpi, nccl");
  if (comm == "nccl" && !on_gpu())
    throw Error("--comm nccl needs the GPU engine, and this rank runs on the CPU (" + choice_.why_cpu + ")");
  if (comm == "nccl" && !built_with_nccl()) throw Error("--comm nccl: this ringscan was built without NCCL");
}

void Engine::agree(comm::Communicator& world) {
  // A GPU of its own: no other rank of this node can be on it (ranks pick
  // local rank modulo the node's GPUs). Collective: every rank asks its node.
  const int node_ranks = comm::ranks_on_this_node();
  const bool own_gpu = on_gpu() && node_ranks <= choice_.gpus_visible;
  int64_t flags[2] = {on_gpu() ? 0 : 1, own_gpu ? 0 : 1};  // some rank on the CPU; some rank sharing a GPU
  world.all_reduce(flags, 2, comm::ReduceOp::max);
  if (on_gpu() && flags[0]) {
    choice_ = DeviceChoice{};
    choice_.label = "cpu";
    choice_.why_cpu = "not every rank has a usable GPU";
  }
  if (comm_ == "nccl" && !on_gpu()) throw Error("--comm nccl needs the GPU engine on every rank: not every rank has a usable GPU");
  if (comm_ == "nccl" && flags[1])
    throw Error("--comm nccl needs one GPU per rank, but " +
                (own_gpu ? std::string("another node") : "this node (" + comm::host_name() + ")") + " runs more ranks (" +
                std::to_string(node_ranks) + " here) than it has GPUs (" + std::to_string(choice_.gpus_visible) +
                " here): start at most one rank per GPU, or use --comm mpi to share GPUs");
  // auto: NCCL when every rank has its own GPU (and this build has NCCL), else MPI through the host.
  resolved_comm_ = (comm_ == "nccl" || (comm_ == "auto" && on_gpu() && !flags[1] && built_with_nccl())) ? "nccl" : "mpi";
}

Engine::~Engine() = default;
Engine::Engine(Engine&&) noexcept = default;
Engine& Engine::operator=(Engine&&) noexcept = default;

void Engine::set_gemm_inputs(const std::string& g) {
  if (g != "bf16" && g != "fp32") throw Error("--gemm-inputs must be bf16 or fp32, got \"" + g + "\"");
  gemm_ = g;
}

void Engine::prepare(Model& model) {
  model_ = &model;
  backend_ = on_gpu() ? make_gpu_backend(model, choice_, comm_backend() == "nccl", gemm_ == "fp32")
                      : make_cpu_backend(model);
}

ComputeBackend& Engine::backend() const {
  if (!backend_) throw Error("internal: the engine was used before prepare()");
  return *backend_;
}

int64_t Engine::token_budget(uint64_t memory_bytes, int ranks_on_node, MemoryCost* cost) const {
  return backend().token_budget(memory_bytes, ranks_on_node, cost);
}

DocumentValues Engine::compute(const std::vector<int32_t>& ids, const WantedOutputs& want) {
  return backend().compute(ids, want);
}

DocumentValues Engine::compute_windowed(const std::vector<int32_t>& ids, int64_t window, int64_t stride) {
  const WantedOutputs logprobs_only{true, false, false};
  DocumentValues v;
  v.logprob = windowed_logprobs(ids, window, stride, [&](const std::vector<int32_t>& part) {
    return backend().compute(part, logprobs_only).logprob;
  });
  return v;
}

std::vector<DocumentValues> Engine::compute_packed(const std::vector<std::vector<int32_t>>& docs,
                                                   const WantedOutputs& want) {
  return backend().compute_packed(docs, want);
}

std::unique_ptr<ForwardedSegments> Engine::forward_sp(
    comm::Communicator& group, const SequenceLayout& layout,
    const std::function<std::vector<int32_t>(const Segment&)>& segment_ids, bool keep_decode_state) {
  return backend().forward_sp(group, layout, segment_ids, keep_decode_state);
}

DocumentValues Engine::compute_sp(comm::Communicator& group, const SequenceLayout& layout,
                                  const std::function<std::vector<int32_t>(const Segment&)>& segment_ids,
                                  const WantedOutputs& want) {
  // Each of this rank's segments' ids with the next segment's first id (its
  // last position's target); the forward takes the segment's own ids.
  std::vector<std::vector<int32_t>> with_next;
  auto mine = forward_sp(group, layout, [&](const Segment& s) {
    with_next.push_back(segment_ids(s));
    return std::vector<int32_t>(with_next.back().begin(), with_next.back().begin() + s.len);
  }, false);
  return gather_document_values(group, layout, *mine, with_next, model_->config().hidden_size, want);
}

DecodeEngine& Engine::decode_engine() { return backend().decode_engine(); }
ShardedDecodeEngine& Engine::sharded_decode_engine() { return backend().sharded_decode_engine(); }
PrefixDecodeEngine& Engine::prefix_decode_engine() { return backend().prefix_decode_engine(); }

}  // namespace ringscan
