// What the single-rank Decoder (decode.h) needs from an engine, so that the
// same continuous batching runs on the CPU (Model) or on a GPU (DeviceModel):
// prefill a prompt, and draw tokens from a batch of sequences' last positions.
#pragma once
#include <cstdint>
#include <climits>
#include <memory>
#include <string>
#include <vector>

#include "kernels/sampling.h"
#include "model/model.h"
#include "runtime/final_hidden.h"

namespace ringscan {

class DecodeEngine {
 public:
  // One sequence's state, as the engine keeps it (host or device).
  struct Sequence {
    virtual ~Sequence() = default;
  };
  virtual ~DecodeEngine() = default;

  virtual int64_t vocab_size() const = 0;
  // The largest batch one step takes (the Decoder's max_batch must not exceed it).
  virtual int64_t max_batch() const = 0;
  // Runs a prompt; the sequence then stands at its last position, ready to
  // draw. prompt_logits (optional): also hands it every position's logits.
  virtual std::unique_ptr<Sequence> prefill(const std::vector<int32_t>& prompt,
                                            const LogitsSink* prompt_logits = nullptr) = 0;
  // Chunked prefill (Decoder::set_prefill_chunk): a sequence with nothing run
  // yet, with room for `prompt_tokens` and the first new tokens; then
  // prefill_chunk() runs the prompt's pieces in order, each continuing the
  // state the one before left. The chunks of a prompt give what prefill() of
  // the whole prompt gives up to summation order (chunk boundaries that fall
  // on the engine's block boundaries change nothing; tests/runtime/
  // test_chunked_prefill.cpp states the tolerance).
  virtual std::unique_ptr<Sequence> start_prefill(int64_t prompt_tokens) = 0;
  // Runs ids[0..n) after what seq holds. overlap (only after
  // enable_prefill_overlap() returned true): the chunk may still be running
  // when this returns, beside the next step(), which never touches `seq`;
  // first_token(seq) and a later chunk of seq are ordered after it by the engine.
  virtual void prefill_chunk(Sequence& seq, const int32_t* ids, int64_t n, bool overlap) = 0;
  // Prepares prefill chunks that run concurrently with step(). False when this
  // engine cannot, with the reason in *why (the chunks then run between steps).
  virtual bool enable_prefill_overlap(std::string* why) = 0;
  // The first new token of a prefilled sequence (from its prompt's last position).
  virtual int32_t first_token(Sequence& seq, const kernels::SamplingParams& params, uint64_t stream,
                              uint64_t step) = 0;
  // One step for n sequences: ids[i] continues seqs[i]; out[i] is its next
  // token, drawn with params[i], stream[i], step[i] (kernels/sampling.h).
  virtual void step(const int32_t* ids, int64_t n, Sequence* const* seqs, const kernels::SamplingParams* params,
                    const uint64_t* stream, const uint64_t* step, int32_t* out) = 0;
};

// The CPU engine: Model::forward / decode_step / logits and kernels::cpu::sample.
class CpuDecodeEngine final : public DecodeEngine {
 public:
  explicit CpuDecodeEngine(Model& model) : model_(model) {}
  const Model& model() const { return model_; }
  int64_t vocab_size() const override { return model_.config().vocab_size; }
  int64_t max_batch() const override { return INT64_MAX; }
  std::unique_ptr<Sequence> prefill(const std::vector<int32_t>& prompt,
                                    const LogitsSink* prompt_logits = nullptr) override;
  // A sequence whose prompt the caller already ran (state after it and the
  // prompt's last final hidden row).
  std::unique_ptr<Sequence> adopt(InferenceState state, std::vector<float> last_hidden) const;
  std::unique_ptr<Sequence> start_prefill(int64_t prompt_tokens) override;
  void prefill_chunk(Sequence& seq, const int32_t* ids, int64_t n, bool overlap) override;
  // One core set runs everything in turn: chunks interleave with steps, never beside them.
  bool enable_prefill_overlap(std::string* why) override;
  int32_t first_token(Sequence& seq, const kernels::SamplingParams& params, uint64_t stream, uint64_t step) override;
  void step(const int32_t* ids, int64_t n, Sequence* const* seqs, const kernels::SamplingParams* params,
            const uint64_t* stream, const uint64_t* step, int32_t* out) override;

 private:
  Model& model_;
};

#ifdef RINGSCAN_WITH_CUDA
class DeviceModel;
// The GPU engine (model/device_model.h): prefill, decode step, lm_head and
// the draw on the device (greedy bit-exact with the CPU; sampled ids equal
// unless a draw lies within double round-off of a boundary, kernels/sampling.h).
std::unique_ptr<DecodeEngine> make_device_decode_engine(DeviceModel& model);
#endif

}  // namespace ringscan
