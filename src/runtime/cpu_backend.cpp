// The CPU backend: the Model (model/model.h), its packed forward and the
// sequence-parallel runner of sequence_parallel.h, with host memory budgets.
#include "model/packed_forward.h"
#include "runtime/backend.h"
#include "runtime/scheduler.h"
#include "runtime/sequence_parallel.h"
#include "runtime/work_progress.h"
#include "util/error.h"

namespace ringscan {

namespace {

class CpuForwardedSegments final : public ForwardedSegments {
 public:
  CpuForwardedSegments(Model& model, comm::Communicator& group, const SequenceLayout& layout,
                       const SegmentIds& segment_ids, bool keep_decode_state)
      : runner_(model, group, layout) {
    runner_.set_keep_decode_state(keep_decode_state);
    pieces_ = runner_.run(segment_ids);
    for (const Piece& p : pieces_) hidden_.emplace_back(model, p.hidden.data(), p.seg.len);
  }
  size_t size() const override { return pieces_.size(); }
  const Segment& segment(size_t i) const override { return pieces_[i].seg; }
  const FinalHidden& hidden(size_t i) const override { return hidden_[i]; }
  SequenceParallelDecodeState take_decode_state() override { return runner_.take_decode_state(); }
  std::unique_ptr<ShardedDecodeEngine::Sequence> take_decode_sequence() override {
    return CpuShardedDecodeEngine::adopt(runner_.take_decode_state());
  }

 private:
  SequenceParallelForward runner_;  // holds the decode state until taken
  std::vector<Piece> pieces_;
  std::vector<HostFinalHidden> hidden_;  // views of pieces_
};

class CpuBackend final : public ComputeBackend {
 public:
  explicit CpuBackend(Model& model) : model_(model) {}

  int64_t token_budget(uint64_t memory_bytes, int ranks_on_node, MemoryCost* cost) const override {
    return ringscan::token_budget(model_.config(), model_.checkpoint().total_bytes(),
                                  memory_bytes ? memory_bytes : default_memory_per_rank(ranks_on_node), cost);
  }

  DocumentValues compute(const std::vector<int32_t>& ids, const WantedOutputs& want) override {
    std::vector<float> hidden(ids.size() * model_.config().hidden_size);
    InferenceState st = model_.new_state();
    const double layers = static_cast<double>(model_.config().layers.size());
    model_.forward(ids.data(), static_cast<int64_t>(ids.size()), st, hidden.data(),
                   [&](int, int64_t, const float*, int64_t n) { report_work(static_cast<double>(n) / layers); });
    DocumentValuesBuilder values(ids, model_.config().hidden_size, want);
    values.add(0, HostFinalHidden(model_, hidden.data(), static_cast<int64_t>(ids.size())));
    return values.take();
  }

  std::vector<DocumentValues> compute_packed(const std::vector<std::vector<int32_t>>& docs,
                                             const WantedOutputs& want) override {
    const int64_t D = model_.config().hidden_size;
    int64_t total = 0;
    for (const auto& d : docs) total += static_cast<int64_t>(d.size());
    std::vector<float> hidden(total * D);
    forward_packed(model_, docs, hidden.data());
    std::vector<DocumentValues> out;
    int64_t row = 0;
    for (const auto& d : docs) {
      const int64_t n = static_cast<int64_t>(d.size());
      DocumentValuesBuilder values(d, D, want);
      values.add(0, HostFinalHidden(model_, hidden.data() + row * D, n));
      out.push_back(values.take());
      row += n;
    }
    return out;
  }

  std::unique_ptr<ForwardedSegments> forward_sp(comm::Communicator& group, const SequenceLayout& layout,
                                                const SegmentIds& segment_ids, bool keep_decode_state) override {
    return std::make_unique<CpuForwardedSegments>(model_, group, layout, segment_ids, keep_decode_state);
  }

  DecodeEngine& decode_engine() override { return decode_; }
  ShardedDecodeEngine& sharded_decode_engine() override { return sharded_; }
  PrefixDecodeEngine& prefix_decode_engine() override { return prefix_; }

 private:
  Model& model_;
  CpuDecodeEngine decode_{model_};
  CpuShardedDecodeEngine sharded_{model_};
  CpuPrefixDecodeEngine prefix_{model_};
};

}  // namespace

std::unique_ptr<ComputeBackend> make_cpu_backend(Model& model) { return std::make_unique<CpuBackend>(model); }

}  // namespace ringscan
