// Many continuations of one shared prefix (ringscan ask): each request forks
// the prefix's state after a sequence-parallel prefill (runtime/saved_state.h
// or SequenceParallelForward with keep_decode_state), appends its own ids and
// then generates, all requests decoding together in one batch.
//
// Per step, for the B active requests: the driver (it holds the Mamba states:
// each request owns a copy of the prefix's conv history and SSM state) runs
// the per-token layers of B rows; a request still feeding its own ids takes
// the next of them, the others their last drawn token (its logits are only
// computed once the request's last own id has gone in). Per attention layer:
//   - the B queries go to every rank (one broadcast);
//   - every rank folds ALL B queries over its shard of the shared prefix K/V
//     in one pass (kernels' attention_block with B query rows): each prefix
//     key block is read once per step for the whole batch, not once per request;
//   - the partials (max, sum, acc, fp32) go to the driver, which merges them in
//     rank order with each request's attention over its own suffix K/V, kept
//     private on the driver (the prefix shards never change).
// Bytes per step are those of ShardedDecoder (runtime/decode.h) without the
// K/V rows: queries A*(P-1)*B*Hq*d*4, partials A*(P-1)*B*Hq*(d+2)*4, tokens (P-1)*B*4.
//
// The scheduling here runs on any engine (prefix_decode_engine.h): the CPU's
// (Model; host shards) or the GPUs' (DeviceModel; each rank's prefix shard
// uploaded once, the B queries' prefix partials from one block-attention call,
// each request's suffix K/V on the driver's device).
#pragma once
#include <deque>
#include <memory>
#include <vector>

#include "comm/communicator.h"
#include "model/model.h"
#include "runtime/decode.h"
#include "runtime/prefix_decode_engine.h"
#include "runtime/sequence_parallel.h"

namespace ringscan {

class PrefixSharedDecoder {
 public:
  // Collective over `group`: every rank constructs it with its part of the
  // prefix state, submits the same requests in the same order and calls step()
  // together. A request's `prompt` is its own ids (appended to the prefix).
  // The prefix K/V are `kv` when given (a loaded state's), else the K/V vectors
  // of prefix.state. On the CPU engine (Model), or on any engine (the GPU's:
  // Engine::prefix_decode_engine(), runtime/engine.h), which outlives the decoder.
  PrefixSharedDecoder(Model& model, comm::Communicator& group, SequenceParallelDecodeState prefix, int max_batch,
                      PrefixKV kv = {});
  PrefixSharedDecoder(PrefixDecodeEngine& engine, comm::Communicator& group, SequenceParallelDecodeState prefix,
                      int max_batch, PrefixKV kv = {});

  void submit(GenerationRequest r);
  std::vector<GenerationResult> step();  // collective; the finished requests, on every rank
  std::vector<GenerationResult> run();

  bool idle() const { return waiting_.empty() && active_.empty(); }
  int driver() const { return prefix_->driver; }
  int64_t prefix_length() const { return prefix_->length; }

  static constexpr const char* kQueryLabel = "ask.query";
  static constexpr const char* kPartialLabel = "ask.partials";
  static constexpr const char* kTokenLabel = "ask.tokens";

 private:
  struct Sequence {
    std::unique_ptr<GenerationTrack> track;
    std::unique_ptr<PrefixDecodeEngine::Fork> fork;  // the driver's: forked Mamba states, private suffix K/V
    size_t fed = 0;                                  // own ids already run
  };

  std::unique_ptr<PrefixDecodeEngine> own_;  // the CPU engine of the Model constructor
  PrefixDecodeEngine& engine_;
  comm::Communicator& group_;
  std::unique_ptr<PrefixDecodeEngine::Prefix> prefix_;
  int max_batch_;
  std::deque<std::unique_ptr<GenerationTrack>> waiting_;
  std::vector<Sequence> active_;
};

}  // namespace ringscan
