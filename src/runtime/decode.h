// Generation after a prefill (DESIGN.md §4, decode): many documents decode
// together, one new token each per step, with continuous batching (a finished
// document's slot is refilled by the next waiting one, after its prefill).
//
//   Decoder         one rank: data-parallel documents, each prefilled and
//                   decoded on this rank (Model::forward, Model::decode_step).
//   ShardedDecoder  a group of P ranks (collective): each document is
//                   prefilled sequence-parallel over the group and decoded with
//                   its KV cache left sharded where the prefill put it; on the
//                   CPU or on GPUs (sharded_decode_engine.h: the engines do the
//                   step below, the decoder the scheduling).
//
// Sharded decode step, per attention layer, for the B documents of the batch:
// the driver (the owner of the last segment: it holds the Mamba states, so the
// Mamba, MLP and projection work of the new tokens runs there) broadcasts the
// B queries; sends each new K/V row to the rank that stores it (the one whose
// shard of that document is smallest, lowest rank on ties, so shards stay
// balanced); every rank folds the queries over its shards into online-softmax
// partials (max, sum, accumulator, fp32), and sends them to the driver, which
// merges them in rank order (attention_merge: exact, the same result as one
// pass over all keys up to fp32 round-off). After the step the driver
// broadcasts the B drawn tokens, so every rank schedules identically.
// Bytes per decode step, summed over the group, on either engine (fp32; Hq query heads of
// head_dim d, K/V width kvd = kv_heads*d; A attention layers):
//   queries   A * (P-1) * B*Hq*d*4      (a binomial-tree broadcast: P-1 messages)
//   K/V rows  A * 2*kvd*4 per document whose new row is stored off the driver
//   partials  A * (P-1) * B*Hq*(d+2)*4  (each non-driver rank to the driver)
//   tokens    (P-1) * B*4
// E.g. Nemotron 3 Nano 4B (A=4, Hq=40, d=128, kvd=1024), P=4, B=1: 246 KB
// queries, <= 32 KB K/V, 250 KB partials. No Mamba state, conv history or
// hidden row moves during decode; after each prefill, the last hidden row
// (hidden*4 bytes) moves once if its owner is not the driver.
#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "kernels/sampling.h"
#include "model/model.h"
#include "runtime/decode_engine.h"
#include "runtime/layout.h"
#include "runtime/sequence_parallel.h"
#include "runtime/sharded_decode_engine.h"

namespace ringscan {

struct GenerationRequest {
  uint64_t id = 0;               // names the result; keys the random stream of sampling
  std::vector<int32_t> prompt;   // at least one id
  int64_t max_new_tokens = 0;
  std::vector<int32_t> stop_ids;  // generation ends after drawing one of these (kept in tokens)
  kernels::SamplingParams sampling;  // default: greedy

  // ShardedDecoder only, instead of `prompt`: the prompt's length and each
  // segment's ids (a rank is asked only for its own segments).
  int64_t prompt_length = 0;
  std::function<std::vector<int32_t>(const Segment&)> segment_ids;
};

// Throws Error naming the request when it cannot run: no prompt, a negative
// budget, or (given the vocabulary size) a prompt id outside the vocabulary.
void check_generation_request(const GenerationRequest& r, int64_t vocab_size);

// NonFiniteLogits: the logits of the next token were not finite (the sampler's
// kSampleNonFinite); no token was added, and the document has failed.
enum class StopReason { Length, StopId, NonFiniteLogits };
const char* stop_reason_name(StopReason r);  // "length" | "stop_id" | "non_finite_logits"

struct GenerationResult {
  uint64_t id = 0;
  std::vector<int32_t> tokens;  // the new ids, prompt excluded
  StopReason reason = StopReason::Length;
  int64_t prompt_tokens = 0;
  double first_token_seconds = 0;  // admission to first token: prefill (chunked: with the steps between chunks) + lm_head + draw
  double decode_seconds = 0;       // first token to the last
};

// One document's progress; shared by both decoders.
class GenerationTrack {
 public:
  explicit GenerationTrack(GenerationRequest r);
  const GenerationRequest& request() const { return req_; }
  // Records a drawn token; returns true when the document is finished.
  bool accept(int32_t token);
  bool finished() const { return finished_; }
  int64_t steps() const { return static_cast<int64_t>(result_.tokens.size()); }  // the next draw's step index
  int32_t last_token() const { return result_.tokens.back(); }
  GenerationResult& result() { return result_; }
  double started = 0, first_token_at = 0;  // steady-clock seconds

 private:
  GenerationRequest req_;
  GenerationResult result_;
  bool finished_ = false;
};

// Steps a decoder (Decoder, ShardedDecoder, PrefixSharedDecoder) until it is idle;
// the results in the order they finished.
template <class D>
std::vector<GenerationResult> run_until_idle(D& decoder) {
  std::vector<GenerationResult> all;
  while (!decoder.idle())
    for (auto& r : decoder.step()) all.push_back(std::move(r));
  return all;
}

class Decoder {
 public:
  // At most `max_batch` documents decode together; more wait in a queue.
  // On the CPU engine (Model), or on any engine (decode_engine.h: the GPU's).
  Decoder(Model& model, int max_batch);
  Decoder(DecodeEngine& engine, int max_batch);

  // Queues a document; it is prefilled when a slot frees.
  void submit(GenerationRequest r);
  // Queues a document whose prompt the caller already ran (state after it,
  // last_hidden = the prompt's last final hidden row, after norm_f). CPU engine only.
  void submit_prefilled(GenerationRequest r, InferenceState state, std::vector<float> last_hidden);
  // The same on any engine: `prefilled` is this decoder's engine's prefill() of r.prompt.
  void submit_prefilled(GenerationRequest r, std::unique_ptr<DecodeEngine::Sequence> prefilled);

  // Chunked prefill, as serving engines do: an admitted document's prompt runs
  // `tokens` at a time, one chunk (at most `tokens` prompt tokens in all,
  // taken from the documents being prefilled in admission order; a prompt is
  // cut only at multiples of `tokens` from its start) per step() before its
  // decode step, so that the active documents wait for at most a chunk
  // instead of a whole prompt between two tokens. overlap: the chunk runs
  // beside the decode step where the engine can (the GPU's second stream,
  // DecodeEngine::enable_prefill_overlap). 0 (the default): a document is
  // prefilled whole on admission. Tokens equal the whole-prefill run's on
  // greedy decoding (tests/runtime/test_chunked_prefill.cpp); with or without
  // overlap they are the same. Call before the first step().
  void set_prefill_chunk(int64_t tokens, bool overlap = true);
  // Whether chunks run beside the decode step, and if they were asked to and do not, why.
  bool prefill_overlapped() const { return overlap_; }
  const std::string& prefill_overlap_refused() const { return overlap_refused_; }

  // Fills free slots from the queue (prefill and first token; chunked: the
  // next chunk), then runs one decode step for every active document. Returns
  // those that finished.
  std::vector<GenerationResult> step();
  // step() until nothing is left; results in the order they finished.
  std::vector<GenerationResult> run();

  bool idle() const { return waiting_.empty() && active_.empty() && prefilling_.empty(); }
  int active() const { return static_cast<int>(active_.size()); }
  int waiting() const { return static_cast<int>(waiting_.size()); }
  int prefilling() const { return static_cast<int>(prefilling_.size()); }

 private:
  struct Sequence {
    std::unique_ptr<GenerationTrack> track;
    std::unique_ptr<DecodeEngine::Sequence> state;  // null until prefilled (or started, chunked)
    int64_t prefilled = 0;                           // chunked: prompt tokens run so far
  };
  void admit(Sequence s, std::vector<GenerationResult>& done);
  void first_token(Sequence s, std::vector<GenerationResult>& done);
  void queue_prefill_chunks();
  void decode_active(std::vector<GenerationResult>& done);

  std::unique_ptr<CpuDecodeEngine> own_;  // when constructed from a Model
  DecodeEngine& engine_;
  int max_batch_;
  int64_t chunk_ = 0;
  bool overlap_ = false;
  std::string overlap_refused_;
  std::deque<Sequence> waiting_;
  std::deque<Sequence> prefilling_;  // chunked: admitted, prompt not yet complete (they hold slots)
  std::vector<Sequence> active_;
};

class ShardedDecoder {
 public:
  // Collective over `group`: every rank constructs it (same layout and
  // max_batch), submits the same requests in the same order and calls step()
  // together. Requests given by segment_ids cannot be checked up front: a bad
  // id there fails on the rank that embeds it, mid-collective (the CLI's
  // error handling then aborts every rank).
  // On the CPU engine (Model), or on any engine (sharded_decode_engine.h: the GPUs').
  ShardedDecoder(Model& model, comm::Communicator& group, LayoutKind layout, int max_batch);
  ShardedDecoder(ShardedDecodeEngine& engine, comm::Communicator& group, LayoutKind layout, int max_batch);

  void submit(GenerationRequest r);
  // Queues a document the group already prefilled with a SequenceParallelForward
  // of this decoder's layout and group, run with set_keep_decode_state(true)
  // (e.g. to score the prompt and continue it): `st` is its take_decode_state().
  // CPU engine only.
  void submit_prefilled(GenerationRequest r, SequenceParallelDecodeState st);
  // The same on any engine: `prefilled` is this rank's part of a prefill by
  // this decoder's engine (ForwardedSegments::take_decode_sequence()).
  void submit_prefilled(GenerationRequest r, std::unique_ptr<ShardedDecodeEngine::Sequence> prefilled);
  // Collective. Returns the documents that finished, on every rank.
  std::vector<GenerationResult> step();
  std::vector<GenerationResult> run();

  bool idle() const { return waiting_.empty() && active_.empty(); }
  int active() const { return static_cast<int>(active_.size()); }
  int driver() const;  // the rank that draws tokens and holds the Mamba states

  // Traffic labels of decode, in the counters of the communicator the engine
  // exchanges over (the group's; on GPUs over NCCL, the NCCL communicator's,
  // except the tokens, which go over the group).
  static constexpr const char* kQueryLabel = "decode.query";       // query broadcast
  static constexpr const char* kKvLabel = "decode.kv";             // new K/V rows to their shard
  static constexpr const char* kPartialLabel = "decode.partials";  // partials to the driver
  static constexpr const char* kTokenLabel = "decode.tokens";      // drawn tokens from the driver

 private:
  struct Sequence {
    std::unique_ptr<GenerationTrack> track;
    std::unique_ptr<ShardedDecodeEngine::Sequence> st;
    std::vector<int64_t> shard_rows;  // per rank: KV rows of this document it holds
  };
  struct Waiting {
    GenerationRequest req;
    std::unique_ptr<ShardedDecodeEngine::Sequence> prefilled;  // null: prefill on admission
  };
  void admit(Waiting w, std::vector<GenerationResult>& done);

  std::unique_ptr<CpuShardedDecodeEngine> own_;  // when constructed from a Model
  ShardedDecodeEngine& engine_;
  comm::Communicator& group_;
  LayoutKind layout_;
  int max_batch_;
  std::deque<Waiting> waiting_;
  std::vector<Sequence> active_;
};

}  // namespace ringscan
