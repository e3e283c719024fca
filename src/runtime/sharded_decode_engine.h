// What the ShardedDecoder (decode.h) needs from an engine, so that one
// scheduler (admission, continuous batching, the balance rule for new K/V
// rows, the drawn tokens' broadcast) decodes on the CPU (Model) or on GPUs
// (DeviceModel): prefill a document sequence-parallel keeping what decode
// needs, draw its first token, and run one sharded decode step (decode.h has
// the step's algorithm and its bytes; both engines send exactly those).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "comm/communicator.h"
#include "kernels/sampling.h"
#include "model/model.h"
#include "runtime/layout.h"
#include "runtime/sequence_parallel.h"

namespace ringscan {

class ShardedDecodeEngine {
 public:
  // This rank's part of one document: its KV shards and, on the driver (the
  // owner of the last segment), the Mamba states and, until the first draw,
  // the prompt's last final hidden row.
  struct Sequence {
    virtual ~Sequence() = default;
    int driver = 0;
    int64_t length = 0;             // positions prefilled
    bool holds_last_hidden = false;  // the driver, before its first draw
  };
  virtual ~ShardedDecodeEngine() = default;

  virtual int64_t vocab_size() const = 0;
  // The largest batch one step takes.
  virtual int64_t max_batch() const = 0;
  // Collective over group: the sequence-parallel prefill of one document,
  // keeping this rank's part of what decode needs. ids(s): the ids of this
  // rank's segment s.
  virtual std::unique_ptr<Sequence> prefill(comm::Communicator& group, const SequenceLayout& layout,
                                            const std::function<std::vector<int32_t>(const Segment&)>& ids) = 0;
  // On the driver: the first new token, from the prompt's last hidden row.
  virtual int32_t first_token(Sequence& seq, const kernels::SamplingParams& params, uint64_t stream,
                              uint64_t step) = 0;
  // Collective over group: one decode step of n documents; document b's new
  // K/V row goes to rank target[b]. On the driver, ids[b] continues seqs[b]
  // and out[b] receives its next token (drawn with params, stream, step:
  // kernels/sampling.h); on the other ranks those four are null.
  virtual void step(comm::Communicator& group, int driver, const int32_t* ids, int64_t n, Sequence* const* seqs,
                    const int* target, const kernels::SamplingParams* params, const uint64_t* stream,
                    const uint64_t* step, int32_t* out) = 0;
};

// The CPU engine: SequenceParallelForward, Model::decode_step with the
// attention of each layer computed over the group's host shards.
class CpuShardedDecodeEngine final : public ShardedDecodeEngine {
 public:
  explicit CpuShardedDecodeEngine(Model& model) : model_(model) {}
  int64_t vocab_size() const override { return model_.config().vocab_size; }
  int64_t max_batch() const override { return INT64_MAX; }
  std::unique_ptr<Sequence> prefill(comm::Communicator& group, const SequenceLayout& layout,
                                    const std::function<std::vector<int32_t>(const Segment&)>& ids) override;
  // A document the group already prefilled (SequenceParallelForward::take_decode_state()).
  static std::unique_ptr<Sequence> adopt(SequenceParallelDecodeState st);
  int32_t first_token(Sequence& seq, const kernels::SamplingParams& params, uint64_t stream, uint64_t step) override;
  void step(comm::Communicator& group, int driver, const int32_t* ids, int64_t n, Sequence* const* seqs,
            const int* target, const kernels::SamplingParams* params, const uint64_t* stream, const uint64_t* step,
            int32_t* out) override;

 private:
  void attend(comm::Communicator& group, int driver, int layer, int64_t n, Sequence* const* seqs, const float* q,
              const float* k, const float* v, float* y, const int* target);
  Model& model_;
};

#ifdef RINGSCAN_WITH_CUDA
class DeviceModel;
// The GPU engine (runtime/cuda/device_sharded_decode.cpp): the GPU
// sequence-parallel prefill keeping the decode state on the device, and the
// step's exchanges over exchange(group): the group itself (MPI: queries, rows
// and partials staged through host memory, so ranks may share a GPU) or a
// device-memory communicator over its ranks (NCCL: device buffers only).
std::unique_ptr<ShardedDecodeEngine> make_device_sharded_decode_engine(
    DeviceModel& model, std::function<comm::Communicator&(comm::Communicator&)> exchange);
#endif

}  // namespace ringscan
