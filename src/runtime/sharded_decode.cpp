// Decoding after a sequence-parallel prefill, with the KV cache left sharded
// over the group (runtime/decode.h has the algorithm and its bytes): the
// scheduling, on any engine (sharded_decode_engine.h: the CPU's, the GPUs').
#include <algorithm>
#include <string>

#include "runtime/decode.h"
#include "runtime/work_progress.h"
#include "util/error.h"

namespace ringscan {

ShardedDecoder::ShardedDecoder(Model& model, comm::Communicator& group, LayoutKind layout, int max_batch)
    : own_(std::make_unique<CpuShardedDecodeEngine>(model)), engine_(*own_), group_(group), layout_(layout),
      max_batch_(max_batch) {
  if (max_batch < 1) throw Error("decoder batch size must be at least 1, got " + std::to_string(max_batch));
}

ShardedDecoder::ShardedDecoder(ShardedDecodeEngine& engine, comm::Communicator& group, LayoutKind layout,
                               int max_batch)
    : engine_(engine), group_(group), layout_(layout), max_batch_(max_batch) {
  if (max_batch < 1) throw Error("decoder batch size must be at least 1, got " + std::to_string(max_batch));
  if (max_batch > engine.max_batch())
    throw Error("decoder batch size " + std::to_string(max_batch) + " is more than the engine's largest step (" +
                std::to_string(engine.max_batch()) + ")");
}

// The owner of the last segment, whatever the length.
int ShardedDecoder::driver() const { return make_layout(0, group_.size(), layout_).segments.back().owner; }

void ShardedDecoder::submit(GenerationRequest r) {
  check_generation_request(r, engine_.vocab_size());
  waiting_.push_back(Waiting{std::move(r), nullptr});
}

void ShardedDecoder::submit_prefilled(GenerationRequest r, SequenceParallelDecodeState st) {
  if (!own_) throw Error("ShardedDecoder: a host decode state is for the CPU engine; give the engine's own sequence");
  submit_prefilled(std::move(r), CpuShardedDecodeEngine::adopt(std::move(st)));
}

void ShardedDecoder::submit_prefilled(GenerationRequest r, std::unique_ptr<ShardedDecodeEngine::Sequence> st) {
  check_generation_request(r, engine_.vocab_size());
  const int64_t L = r.prompt.empty() ? r.prompt_length : static_cast<int64_t>(r.prompt.size());
  if (!st || st->length != L)
    throw Error("generation request " + std::to_string(r.id) + ": its prefilled state covers " +
                std::to_string(st ? st->length : 0) + " positions but the prompt has " + std::to_string(L) + " ids");
  if (st->driver != driver())
    throw Error("generation request " + std::to_string(r.id) + ": prefilled with another layout than this decoder's (" +
                layout_name(layout_) + ")");
  if (group_.rank() == driver() && !st->holds_last_hidden)
    throw Error("generation request " + std::to_string(r.id) +
                ": its prefilled state has no last hidden row (run with set_keep_decode_state(true))");
  waiting_.push_back(Waiting{std::move(r), std::move(st)});
}

void ShardedDecoder::admit(Waiting w, std::vector<GenerationResult>& done) {
  Sequence s;
  s.track = std::make_unique<GenerationTrack>(std::move(w.req));
  GenerationTrack& t = *s.track;
  if (t.finished()) {  // max_new_tokens 0: no prefill at all
    done.push_back(std::move(t.result()));
    return;
  }
  const int P = group_.size(), me = group_.rank(), drv = driver();
  const GenerationRequest& req = t.request();
  SequenceLayout layout = make_layout(t.result().prompt_tokens, P, layout_);
  if (w.prefilled) {
    s.st = std::move(w.prefilled);
  } else {
    s.st = engine_.prefill(group_, layout, [&](const Segment& seg) {
      if (!req.prompt.empty()) return std::vector<int32_t>(req.prompt.begin() + seg.begin, req.prompt.begin() + seg.end());
      return req.segment_ids(seg);
    });
  }
  s.shard_rows.resize(P);
  for (int r = 0; r < P; ++r) s.shard_rows[r] = layout.tokens_of(r);

  int32_t token = 0;
  if (me == drv) token = engine_.first_token(*s.st, req.sampling, req.id, 0);
  {
    auto _ = group_.counter_scope(kTokenLabel);
    group_.broadcast(&token, 1, drv);
  }
  report_work(1);
  if (t.accept(token)) done.push_back(std::move(t.result()));
  else active_.push_back(std::move(s));
}

std::vector<GenerationResult> ShardedDecoder::step() {
  std::vector<GenerationResult> done;
  while (static_cast<int>(active_.size()) < max_batch_ && !waiting_.empty()) {
    Waiting w = std::move(waiting_.front());
    waiting_.pop_front();
    admit(std::move(w), done);
  }
  const int64_t B = active_.size();
  if (B == 0) return done;
  const int me = group_.rank(), drv = driver();

  // Where each new K/V row goes: the rank holding the fewest rows of that document.
  std::vector<int> target(B);
  std::vector<ShardedDecodeEngine::Sequence*> seqs(B);
  for (int64_t b = 0; b < B; ++b) {
    const auto& rows = active_[b].shard_rows;
    target[b] = static_cast<int>(std::min_element(rows.begin(), rows.end()) - rows.begin());
    seqs[b] = active_[b].st.get();
  }

  std::vector<int32_t> drawn(B);
  if (me == drv) {
    std::vector<int32_t> ids(B);
    std::vector<kernels::SamplingParams> params(B);
    std::vector<uint64_t> stream(B), step(B);
    for (int64_t b = 0; b < B; ++b) {
      const GenerationTrack& t = *active_[b].track;
      ids[b] = t.last_token();
      params[b] = t.request().sampling;
      stream[b] = t.request().id;
      step[b] = t.steps();
    }
    engine_.step(group_, drv, ids.data(), B, seqs.data(), target.data(), params.data(), stream.data(), step.data(),
                 drawn.data());
  } else {
    engine_.step(group_, drv, nullptr, B, seqs.data(), target.data(), nullptr, nullptr, nullptr, nullptr);
  }
  {
    auto _ = group_.counter_scope(kTokenLabel);
    group_.broadcast(drawn.data(), drawn.size(), drv);
  }
  report_work(static_cast<double>(B));

  std::vector<Sequence> still;
  for (int64_t b = 0; b < B; ++b) {
    active_[b].shard_rows[target[b]] += 1;
    if (active_[b].track->accept(drawn[b])) done.push_back(std::move(active_[b].track->result()));
    else still.push_back(std::move(active_[b]));
  }
  active_ = std::move(still);
  return done;
}

std::vector<GenerationResult> ShardedDecoder::run() { return run_until_idle(*this); }

}  // namespace ringscan
