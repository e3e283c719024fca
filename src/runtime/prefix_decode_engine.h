// What the PrefixSharedDecoder (prefix_decode.h: the algorithm and its bytes)
// needs from an engine, so that one scheduler (admission, feeding each
// question's own ids, the drawn tokens' broadcast, results) decodes on the CPU
// (Model) or on GPUs (DeviceModel): hold this rank's part of the shared
// prefix, fork a question from it, and run one collective step of B rows.
// Both engines send exactly prefix_decode.h's bytes, under its labels.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "comm/communicator.h"
#include "kernels/sampling.h"
#include "kernels/weight_view.h"
#include "model/model.h"
#include "runtime/sequence_parallel.h"

namespace ringscan {

// This rank's shard of the prefix K/V, per model layer (attention layers set):
// rows [rows, kv_heads*head_dim] of `dtype` (F32 or BF16), read-only, as one or
// more pieces whose rows together are the shard (their order is the fold order
// only: attention over the prefix needs no positions). A loaded state's pieces
// point into its shard files, mapped read-only (runtime/saved_state.h): one
// piece when the rank's rows are one saved rank's, several when re-sharded.
// `keep` owns the memory (the mappings, or the vectors the rows live in).
struct PrefixKV {
  struct Piece {
    const void* k = nullptr;
    const void* v = nullptr;
    int64_t rows = 0;
  };
  struct Layer {
    std::vector<Piece> pieces;
    int64_t rows() const {
      int64_t n = 0;
      for (const Piece& p : pieces) n += p.rows;
      return n;
    }
  };
  DType dtype = DType::F32;
  std::vector<Layer> layers;
  std::shared_ptr<const void> keep;
};

class PrefixDecodeEngine {
 public:
  // This rank's part of the shared prefix, as the engine holds it: its K/V
  // shard and, on the driver, the Mamba states after the prefix.
  struct Prefix {
    virtual ~Prefix() = default;
    int driver = 0;
    int64_t length = 0;       // prefix positions
    bool on_driver = false;   // this rank is the driver
  };
  // One question's own state: on the driver a copy of the prefix's Mamba
  // states and its private suffix K/V; nothing on the other ranks.
  struct Fork {
    virtual ~Fork() = default;
  };
  virtual ~PrefixDecodeEngine() = default;

  virtual int64_t vocab_size() const = 0;
  // The largest batch one step takes.
  virtual int64_t max_batch() const = 0;
  // This rank (of group) and its part of a prefix state (SequenceParallelForward's
  // take_decode_state() or a loaded state's st): the driver's Mamba states in
  // st.state; the K/V shard in kv, or st's own K/V vectors when kv has no
  // layers. The GPU engine uploads both here, once (kv may be released after).
  // Error when they do not fit the model.
  virtual std::unique_ptr<Prefix> load_prefix(const comm::Communicator& group, SequenceParallelDecodeState st,
                                              PrefixKV kv) = 0;
  // A question forking the prefix: on the driver a copy of the prefix's Mamba
  // states at position prefix.length, with no K/V of its own yet.
  virtual std::unique_ptr<Fork> fork(const Prefix& prefix) = 0;
  // Collective over group: one decode step of n rows. On the driver ids[b]
  // continues forks[b], and the n_draw rows drawing[0..n_draw) (ascending)
  // draw their next token into out[i] with params[i], stream[i], step[i]
  // (kernels/sampling.h); on the other ranks every pointer argument is null.
  virtual void step(comm::Communicator& group, const Prefix& prefix, const int32_t* ids, int64_t n,
                    Fork* const* forks, const int64_t* drawing, int64_t n_draw, const kernels::SamplingParams* params,
                    const uint64_t* stream, const uint64_t* step, int32_t* out) = 0;
};

// The CPU engine (cpu_prefix_decode_engine.cpp): Model::decode_step with each
// attention layer's attention over the group's host prefix shards.
class CpuPrefixDecodeEngine final : public PrefixDecodeEngine {
 public:
  explicit CpuPrefixDecodeEngine(Model& model) : model_(model) {}
  int64_t vocab_size() const override { return model_.config().vocab_size; }
  int64_t max_batch() const override { return INT64_MAX; }
  std::unique_ptr<Prefix> load_prefix(const comm::Communicator& group, SequenceParallelDecodeState st,
                                      PrefixKV kv) override;
  std::unique_ptr<Fork> fork(const Prefix& prefix) override;
  void step(comm::Communicator& group, const Prefix& prefix, const int32_t* ids, int64_t n, Fork* const* forks,
            const int64_t* drawing, int64_t n_draw, const kernels::SamplingParams* params, const uint64_t* stream,
            const uint64_t* step, int32_t* out) override;

 private:
  void attend(comm::Communicator& group, const Prefix& prefix, int layer, int64_t n, Fork* const* forks,
              const float* q, const float* k, const float* v, float* y);
  Model& model_;
};

// The checks both engines make of a prefix state against the model: layer
// counts of the state and of the K/V; fills kv with views of st's own K/V
// vectors when it has no layers (st must then stay where it is).
void check_prefix_state(const ModelConfig& c, const SequenceParallelDecodeState& st, PrefixKV& kv);

#ifdef RINGSCAN_WITH_CUDA
class DeviceModel;
// The GPU engine (runtime/cuda/device_prefix_decode.cpp): the prefix shard
// uploaded once in the engine's KV dtype, the step's exchanges over
// exchange(group) as the GPU sharded decode's (sharded_decode_engine.h).
std::unique_ptr<PrefixDecodeEngine> make_device_prefix_decode_engine(
    DeviceModel& model, std::function<comm::Communicator&(comm::Communicator&)> exchange);
#endif

}  // namespace ringscan
