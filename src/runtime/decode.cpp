// Single-rank batched decoding with continuous batching (runtime/decode.h).
#include "runtime/decode.h"

#include <algorithm>
#include <chrono>
#include <string>

#include "runtime/work_progress.h"
#include "util/error.h"

namespace ringscan {

namespace {
double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::StopId: return "stop_id";
    case StopReason::NonFiniteLogits: return "non_finite_logits";
    case StopReason::Length: break;
  }
  return "length";
}

void check_generation_request(const GenerationRequest& r, int64_t vocab_size) {
  const std::string who = "generation request " + std::to_string(r.id);
  if (r.max_new_tokens < 0) throw Error(who + ": max_new_tokens must be >= 0, got " + std::to_string(r.max_new_tokens));
  if (r.prompt.empty() && (r.prompt_length <= 0 || !r.segment_ids))
    throw Error(who + " has an empty prompt (at least one id is needed)");
  for (size_t i = 0; i < r.prompt.size(); ++i)
    if (r.prompt[i] < 0 || r.prompt[i] >= vocab_size)
      throw Error(who + ": token id " + std::to_string(r.prompt[i]) + " at position " + std::to_string(i) +
                  " is outside the vocabulary (0.." + std::to_string(vocab_size - 1) + ")");
}

GenerationTrack::GenerationTrack(GenerationRequest r) : req_(std::move(r)) {
  result_.id = req_.id;
  result_.prompt_tokens = req_.prompt.empty() ? req_.prompt_length : static_cast<int64_t>(req_.prompt.size());
  started = now_seconds();
  if (req_.max_new_tokens == 0) finished_ = true;
}

bool GenerationTrack::accept(int32_t token) {
  if (finished_) throw Error("generation request " + std::to_string(req_.id) + " got a token after it finished");
  const double t = now_seconds();
  if (token == kernels::kSampleNonFinite) {
    finished_ = true;
    result_.reason = StopReason::NonFiniteLogits;
    result_.decode_seconds = result_.tokens.empty() ? 0 : t - first_token_at;
    return true;
  }
  result_.tokens.push_back(token);
  if (result_.tokens.size() == 1) {
    first_token_at = t;
    result_.first_token_seconds = t - started;
  }
  if (std::find(req_.stop_ids.begin(), req_.stop_ids.end(), token) != req_.stop_ids.end()) {
    finished_ = true;
    result_.reason = StopReason::StopId;
  } else if (steps() >= req_.max_new_tokens) {
    finished_ = true;
    result_.reason = StopReason::Length;
  }
  if (finished_) result_.decode_seconds = t - first_token_at;
  return finished_;
}

Decoder::Decoder(Model& model, int max_batch)
    : own_(std::make_unique<CpuDecodeEngine>(model)), engine_(*own_), max_batch_(max_batch) {
  if (max_batch < 1) throw Error("decoder batch size must be at least 1, got " + std::to_string(max_batch));
}

Decoder::Decoder(DecodeEngine& engine, int max_batch) : engine_(engine), max_batch_(max_batch) {
  if (max_batch < 1) throw Error("decoder batch size must be at least 1, got " + std::to_string(max_batch));
  if (max_batch > engine.max_batch())
    throw Error("decoder batch size " + std::to_string(max_batch) + " exceeds the engine's largest batch (" +
                std::to_string(engine.max_batch()) + ")");
}

void Decoder::submit(GenerationRequest r) {
  if (r.prompt.empty() && r.segment_ids)
    throw Error("generation request " + std::to_string(r.id) +
                ": a single-rank decoder needs the whole prompt, not segment_ids");
  check_generation_request(r, engine_.vocab_size());
  Sequence s;
  s.track = std::make_unique<GenerationTrack>(std::move(r));
  waiting_.push_back(std::move(s));
}

void Decoder::submit_prefilled(GenerationRequest r, InferenceState state, std::vector<float> last_hidden) {
  if (!own_) throw Error("submit_prefilled takes a CPU engine's state: this decoder runs on another engine");
  const Model& model = own_->model();
  check_generation_request(r, engine_.vocab_size());
  if (static_cast<int64_t>(last_hidden.size()) != model.config().hidden_size)
    throw Error("generation request " + std::to_string(r.id) + ": last_hidden has " +
                std::to_string(last_hidden.size()) + " values, expected hidden_size " +
                std::to_string(model.config().hidden_size));
  if (state.position != static_cast<int64_t>(r.prompt.size()))
    throw Error("generation request " + std::to_string(r.id) + ": its state is at position " +
                std::to_string(state.position) + " but the prompt has " + std::to_string(r.prompt.size()) + " ids");
  submit_prefilled(std::move(r), own_->adopt(std::move(state), std::move(last_hidden)));
}

void Decoder::submit_prefilled(GenerationRequest r, std::unique_ptr<DecodeEngine::Sequence> prefilled) {
  if (!prefilled) throw Error("generation request " + std::to_string(r.id) + ": no prefilled sequence");
  check_generation_request(r, engine_.vocab_size());
  Sequence s;
  s.track = std::make_unique<GenerationTrack>(std::move(r));
  s.state = std::move(prefilled);
  waiting_.push_back(std::move(s));
}

void Decoder::set_prefill_chunk(int64_t tokens, bool overlap) {
  if (tokens < 0) throw Error("the prefill chunk must be >= 0 tokens (0: whole prompts), got " + std::to_string(tokens));
  chunk_ = tokens;
  overlap_ = false;
  overlap_refused_.clear();
  if (tokens > 0 && overlap) overlap_ = engine_.enable_prefill_overlap(&overlap_refused_);
}

// Admission: time to first token counts from here, not from submit. Whole
// prefill (or an already prefilled document): the first token now. Chunked:
// the document holds a slot while its prompt runs, chunk by chunk.
void Decoder::admit(Sequence s, std::vector<GenerationResult>& done) {
  GenerationTrack& t = *s.track;
  t.started = now_seconds();
  if (t.finished()) {  // max_new_tokens 0
    done.push_back(std::move(t.result()));
    return;
  }
  if (!s.state && chunk_ > 0) {
    s.state = engine_.start_prefill(static_cast<int64_t>(t.request().prompt.size()));
    prefilling_.push_back(std::move(s));
    return;
  }
  if (!s.state) {
    s.state = engine_.prefill(t.request().prompt);
    report_work(static_cast<double>(t.request().prompt.size()));
  }
  first_token(std::move(s), done);
}

// The first token, from the prompt's last position; the document then decodes.
void Decoder::first_token(Sequence s, std::vector<GenerationResult>& done) {
  GenerationTrack& t = *s.track;
  const int32_t token = engine_.first_token(*s.state, t.request().sampling, t.request().id, 0);
  report_work(1);
  if (t.accept(token)) done.push_back(std::move(t.result()));
  else active_.push_back(std::move(s));
}

// This step's chunk: up to chunk_ prompt tokens, the oldest prefilling
// documents first. A prompt is cut only at multiples of chunk_ from its start:
// a document that cannot finish in what is left of the budget waits for the
// next step's whole chunk (so chunks that are whole engine blocks run exactly
// the blocks of one forward).
void Decoder::queue_prefill_chunks() {
  int64_t budget = chunk_;
  for (Sequence& s : prefilling_) {
    const std::vector<int32_t>& prompt = s.track->request().prompt;
    const int64_t left = static_cast<int64_t>(prompt.size()) - s.prefilled;
    if (budget < std::min(left, chunk_)) break;
    const int64_t n = std::min(budget, left);
    engine_.prefill_chunk(*s.state, prompt.data() + s.prefilled, n, overlap_);
    s.prefilled += n;
    budget -= n;
    report_work(static_cast<double>(n));
  }
}

void Decoder::decode_active(std::vector<GenerationResult>& done) {
  const int64_t B = active_.size();
  if (B == 0) return;
  std::vector<int32_t> ids(B), drawn(B);
  std::vector<DecodeEngine::Sequence*> states(B);
  std::vector<kernels::SamplingParams> params(B);
  std::vector<uint64_t> stream(B), step(B);
  for (int64_t b = 0; b < B; ++b) {
    GenerationTrack& t = *active_[b].track;
    ids[b] = t.last_token();
    states[b] = active_[b].state.get();
    params[b] = t.request().sampling;
    stream[b] = t.request().id;
    step[b] = t.steps();
  }
  engine_.step(ids.data(), B, states.data(), params.data(), stream.data(), step.data(), drawn.data());
  report_work(static_cast<double>(B));
  std::vector<Sequence> still;
  for (int64_t b = 0; b < B; ++b) {
    if (active_[b].track->accept(drawn[b])) done.push_back(std::move(active_[b].track->result()));
    else still.push_back(std::move(active_[b]));
  }
  active_ = std::move(still);
}

std::vector<GenerationResult> Decoder::step() {
  std::vector<GenerationResult> done;
  while (static_cast<int>(active_.size() + prefilling_.size()) < max_batch_ && !waiting_.empty()) {
    Sequence s = std::move(waiting_.front());
    waiting_.pop_front();
    admit(std::move(s), done);
  }
  // The chunk is queued first so that, overlapped, it runs beside the decode
  // step; documents whose prompt it completes draw their first token after
  // the step and decode from the next one.
  queue_prefill_chunks();
  decode_active(done);
  while (!prefilling_.empty() &&
         prefilling_.front().prefilled == static_cast<int64_t>(prefilling_.front().track->request().prompt.size())) {
    Sequence s = std::move(prefilling_.front());
    prefilling_.pop_front();
    first_token(std::move(s), done);
  }
  return done;
}

std::vector<GenerationResult> Decoder::run() { return run_until_idle(*this); }

}  // namespace ringscan
