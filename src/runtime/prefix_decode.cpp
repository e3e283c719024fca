// Prefix-shared batched decoding (runtime/prefix_decode.h has the algorithm):
// the scheduling, on any engine (prefix_decode_engine.h: the CPU's, the GPUs').
#include "runtime/prefix_decode.h"

#include <chrono>
#include <string>

#include "runtime/work_progress.h"
#include "util/error.h"

namespace ringscan {

namespace {
double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
// Drawn-token slot of a row that drew nothing this step (still feeding its own ids).
constexpr int32_t kNoDraw = -2;
}  // namespace

PrefixSharedDecoder::PrefixSharedDecoder(Model& model, comm::Communicator& group, SequenceParallelDecodeState prefix,
                                         int max_batch, PrefixKV kv)
    : own_(std::make_unique<CpuPrefixDecodeEngine>(model)), engine_(*own_), group_(group), max_batch_(max_batch) {
  if (max_batch < 1) throw Error("decoder batch size must be at least 1, got " + std::to_string(max_batch));
  prefix_ = engine_.load_prefix(group, std::move(prefix), std::move(kv));
}

PrefixSharedDecoder::PrefixSharedDecoder(PrefixDecodeEngine& engine, comm::Communicator& group,
                                         SequenceParallelDecodeState prefix, int max_batch, PrefixKV kv)
    : engine_(engine), group_(group), max_batch_(max_batch) {
  if (max_batch < 1) throw Error("decoder batch size must be at least 1, got " + std::to_string(max_batch));
  if (max_batch > engine.max_batch())
    throw Error("decoder batch size " + std::to_string(max_batch) + " is more than the engine's largest step (" +
                std::to_string(engine.max_batch()) + ")");
  prefix_ = engine_.load_prefix(group, std::move(prefix), std::move(kv));
}

void PrefixSharedDecoder::submit(GenerationRequest r) {
  if (r.prompt.empty())
    throw Error("generation request " + std::to_string(r.id) + " has no ids of its own to append to the prefix");
  check_generation_request(r, engine_.vocab_size());
  waiting_.push_back(std::make_unique<GenerationTrack>(std::move(r)));
}

std::vector<GenerationResult> PrefixSharedDecoder::step() {
  std::vector<GenerationResult> done;
  const int me = group_.rank(), drv = driver();
  while (static_cast<int>(active_.size()) < max_batch_ && !waiting_.empty()) {
    Sequence s;
    s.track = std::move(waiting_.front());
    waiting_.pop_front();
    s.track->started = now_seconds();
    if (s.track->finished()) {  // max_new_tokens 0
      done.push_back(std::move(s.track->result()));
      continue;
    }
    s.fork = engine_.fork(*prefix_);  // the prefix's Mamba states; no K/V of its own yet
    active_.push_back(std::move(s));
  }
  const int64_t B = active_.size();
  if (B == 0) return done;

  std::vector<int32_t> drawn(B, kNoDraw);
  if (me == drv) {
    std::vector<int32_t> ids(B);
    std::vector<PrefixDecodeEngine::Fork*> forks(B);
    std::vector<int64_t> drawing;  // rows whose next token is drawn this step (the last own id or a drawn one goes in)
    for (int64_t b = 0; b < B; ++b) {
      Sequence& s = active_[b];
      const auto& own = s.track->request().prompt;
      ids[b] = s.fed < own.size() ? own[s.fed] : s.track->last_token();
      if (s.fed + 1 >= own.size()) drawing.push_back(b);
      forks[b] = s.fork.get();
    }
    const int64_t n = drawing.size();
    std::vector<kernels::SamplingParams> params(n);
    std::vector<uint64_t> stream(n), step(n);
    std::vector<int32_t> got(n);
    for (int64_t i = 0; i < n; ++i) {
      const GenerationTrack& t = *active_[drawing[i]].track;
      params[i] = t.request().sampling;
      stream[i] = t.request().id;
      step[i] = t.steps();
    }
    engine_.step(group_, *prefix_, ids.data(), B, forks.data(), drawing.data(), n, params.data(), stream.data(),
                 step.data(), got.data());
    for (int64_t i = 0; i < n; ++i) drawn[drawing[i]] = got[i];
  } else {
    engine_.step(group_, *prefix_, nullptr, B, nullptr, nullptr, 0, nullptr, nullptr, nullptr, nullptr);
  }
  if (group_.size() > 1) {
    auto _ = group_.counter_scope(kTokenLabel);
    group_.broadcast(drawn.data(), drawn.size(), drv);
  }
  report_work(static_cast<double>(B));

  std::vector<Sequence> still;
  for (int64_t b = 0; b < B; ++b) {
    Sequence& s = active_[b];
    const bool feeding = s.fed < s.track->request().prompt.size();
    if (feeding) s.fed += 1;
    if (drawn[b] != kNoDraw && s.track->accept(drawn[b])) done.push_back(std::move(s.track->result()));
    else still.push_back(std::move(s));
  }
  active_ = std::move(still);
  return done;
}

std::vector<GenerationResult> PrefixSharedDecoder::run() { return run_until_idle(*this); }

}  // namespace ringscan
