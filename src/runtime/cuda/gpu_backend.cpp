// The GPU backend (CUDA builds): the DeviceModel (model/device_model.h), the
// GPU sequence-parallel runner (device_sequence_parallel.h) over the group's
// MPI communicator or, for --comm nccl, one NCCL communicator per group size
// (all its exchanges on device buffers) with the sharded decode after it
// (device_sharded_decode.cpp) and the prefix-shared decode of saved states
// (device_prefix_decode.cpp) over the same communicator, and budgets from
// the GPU's memory.
#include <algorithm>
#include <map>

#include "comm/mpi_communicator.h"
#ifdef RINGSCAN_HAVE_NCCL
#include "comm/nccl_communicator.h"
#endif
#include "model/device_model.h"
#include "model/memory_plan.h"
#include "runtime/backend.h"
#include "runtime/cuda/device_final_hidden.h"
#include "runtime/device_sequence_parallel.h"
#include "runtime/work_progress.h"
#include "util/error.h"

namespace ringscan {

namespace {

class GpuForwardedSegments final : public ForwardedSegments {
 public:
  GpuForwardedSegments(DeviceModel& model, comm::Communicator& exchange, const SequenceLayout& layout,
                       const SegmentIds& segment_ids, bool keep_decode_state)
      : model_(model) {
    DeviceSequenceParallelForward runner(model, exchange, layout);
    runner.set_keep_decode_state(keep_decode_state);
    pieces_ = runner.run(segment_ids);
    if (keep_decode_state) decode_ = std::make_unique<DeviceSequenceParallelDecodeState>(runner.take_decode_state());
    for (const DevicePiece& p : pieces_) hidden_.emplace_back(model, p.d_hidden(), p.seg.len);
  }
  size_t size() const override { return pieces_.size(); }
  const Segment& segment(size_t i) const override { return pieces_[i].seg; }
  const FinalHidden& hidden(size_t i) const override { return hidden_[i]; }
  // Downloaded (device_saved_state.cpp), and the device copy freed.
  SequenceParallelDecodeState take_decode_state() override {
    if (!decode_) throw Error("take_decode_state: the forward did not keep the decode state");
    SequenceParallelDecodeState host = download_decode_state(model_, *decode_);
    decode_.reset();
    return host;
  }
  std::unique_ptr<ShardedDecodeEngine::Sequence> take_decode_sequence() override {
    if (!decode_) throw Error("take_decode_sequence: the forward did not keep the decode state");
    auto seq = adopt_device_decode_state(std::move(*decode_));
    decode_.reset();
    return seq;
  }

 private:
  DeviceModel& model_;
  std::vector<DevicePiece> pieces_;
  std::vector<DeviceFinalHidden> hidden_;  // views of pieces_
  std::unique_ptr<DeviceSequenceParallelDecodeState> decode_;  // kept, until taken in one form
};

class GpuBackend final : public ComputeBackend {
 public:
  GpuBackend(const Model& model, const DeviceChoice& choice, bool nccl, bool fp32_gemm)
      : gpu_(model, DeviceModelOptions{fp32_gemm ? GemmInputs::Fp32 : GemmInputs::Bf16}), gpus_visible_(std::max(1, choice.gpus_visible)), nccl_(nccl) {}

  int64_t token_budget(uint64_t memory_bytes, int ranks_on_node, MemoryCost* cost) const override {
    const ModelConfig& c = gpu_.config();
    uint64_t memory = memory_bytes;
    if (memory == 0) {  // 90% of what is free plus what the engine holds, shared by the ranks on this GPU
      const uint64_t sharing = static_cast<uint64_t>((std::max(1, ranks_on_node) + gpus_visible_ - 1) / gpus_visible_);
      memory = (device_memory().free_bytes + gpu_.weight_bytes() + gpu_.arena_bytes()) / 10 * 9 / sharing;
    }
    // A segment's plan at two lengths gives the per-token and the fixed costs.
    const DeviceMemoryPlan a = plan_device_memory(c, 1024, 2, gpu_.block_tokens()),
                           b = plan_device_memory(c, 2048, 2, gpu_.block_tokens());
    const uint64_t per_token = std::max<uint64_t>((b.total() - a.total()) / 1024, 1), fixed = a.total() - per_token * 1024;
    if (cost) *cost = MemoryCost{fixed, per_token};
    return memory <= fixed ? 1 : static_cast<int64_t>((memory - fixed) / per_token);
  }

  DocumentValues compute(const std::vector<int32_t>& ids, const WantedOutputs& want) override {
    DocumentValuesBuilder values(ids, gpu_.config().hidden_size, want);
    if (ids.empty()) return values.take();
    DeviceSequence seq = gpu_.new_sequence(static_cast<int64_t>(ids.size()));
    gpu_.forward(ids.data(), static_cast<int64_t>(ids.size()), seq,
                 [&](int64_t row0, int64_t rows, const float* d_hidden) {
                   values.add(row0, DeviceFinalHidden(gpu_, d_hidden, rows));
                   report_work(static_cast<double>(rows));
                 });
    return values.take();
  }

  std::vector<DocumentValues> compute_packed(const std::vector<std::vector<int32_t>>& docs,
                                             const WantedOutputs& want) override {
    std::vector<DocumentValues> out(docs.size());
    gpu_.forward_packed(docs, [&](size_t i, const float* d_hidden) {
      DocumentValuesBuilder values(docs[i], gpu_.config().hidden_size, want);
      values.add(0, DeviceFinalHidden(gpu_, d_hidden, static_cast<int64_t>(docs[i].size())));
      out[i] = values.take();
    });
    return out;
  }

  std::unique_ptr<ForwardedSegments> forward_sp(comm::Communicator& group, const SequenceLayout& layout,
                                                const SegmentIds& segment_ids, bool keep_decode_state) override {
    return std::make_unique<GpuForwardedSegments>(gpu_, exchange_comm(group), layout, segment_ids, keep_decode_state);
  }

  DecodeEngine& decode_engine() override {
    if (!decode_) decode_ = make_device_decode_engine(gpu_);
    return *decode_;
  }

  ShardedDecodeEngine& sharded_decode_engine() override {
    if (!sharded_)
      sharded_ = make_device_sharded_decode_engine(gpu_, [this](comm::Communicator& g) -> comm::Communicator& {
        return exchange_comm(g);
      });
    return *sharded_;
  }

  PrefixDecodeEngine& prefix_decode_engine() override {
    if (!prefix_)
      prefix_ = make_device_prefix_decode_engine(gpu_, [this](comm::Communicator& g) -> comm::Communicator& {
        return exchange_comm(g);
      });
    return *prefix_;
  }

 private:
  // What the sequence-parallel runner exchanges over: `group` itself (MPI),
  // or for --comm nccl a device-memory communicator over the same ranks, made
  // once per group size (its NCCL id bootstrapped over the group's MPI
  // communicator) and ordered after the engine's stream. Collective over `group`.
  comm::Communicator& exchange_comm(comm::Communicator& group) {
    if (!nccl_) return group;
#ifdef RINGSCAN_HAVE_NCCL
    auto& slot = nccl_comms_[group.size()];
    if (!slot) {
      auto* mpi = dynamic_cast<comm::MpiCommunicator*>(&group);
      if (!mpi) throw Error("--comm nccl: a sequence-parallel group must be an MPI communicator to start NCCL from");
      slot = comm::NcclCommunicator::create(mpi->mpi_comm());
      slot->set_compute_stream(gpu_.stream());
    }
    return *slot;
#else
    throw Error("--comm nccl: this ringscan was built without NCCL");
#endif
  }

  DeviceModel gpu_;
  int gpus_visible_;
  bool nccl_;
#ifdef RINGSCAN_HAVE_NCCL
  std::map<int, std::unique_ptr<comm::NcclCommunicator>> nccl_comms_;  // by group size
#endif
  std::unique_ptr<DecodeEngine> decode_;
  std::unique_ptr<ShardedDecodeEngine> sharded_;
  std::unique_ptr<PrefixDecodeEngine> prefix_;
};

}  // namespace

std::unique_ptr<ComputeBackend> make_gpu_backend(const Model& model, const DeviceChoice& choice, bool nccl,
                                                 bool fp32_gemm) {
  return std::make_unique<GpuBackend>(model, choice, nccl, fp32_gemm);
}

}  // namespace ringscan
