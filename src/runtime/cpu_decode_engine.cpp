#include "runtime/decode_engine.h"

#include "util/error.h"

namespace ringscan {

namespace {

struct CpuSequence : DecodeEngine::Sequence {
  InferenceState state;
  std::vector<float> last_hidden;  // the prompt's last final hidden row, until the first token
};

CpuSequence& cpu(DecodeEngine::Sequence& s) { return static_cast<CpuSequence&>(s); }

// n ids after what s holds (a whole prompt or one chunk of it); the last row's
// final hidden state kept for the first token.
void run(Model& model, CpuSequence& s, const int32_t* ids, int64_t n, const LogitsSink* logits) {
  const int64_t D = model.config().hidden_size;
  std::vector<float> hidden(n * D);
  model.forward(ids, n, s.state, hidden.data());
  if (logits) logits->feed(0, HostFinalHidden(model, hidden.data(), n));
  s.last_hidden.assign(hidden.end() - D, hidden.end());
}

}  // namespace

std::unique_ptr<DecodeEngine::Sequence> CpuDecodeEngine::prefill(const std::vector<int32_t>& prompt,
                                                                 const LogitsSink* prompt_logits) {
  auto s = start_prefill(static_cast<int64_t>(prompt.size()));
  run(model_, cpu(*s), prompt.data(), static_cast<int64_t>(prompt.size()), prompt_logits);
  return s;
}

std::unique_ptr<DecodeEngine::Sequence> CpuDecodeEngine::adopt(InferenceState state,
                                                               std::vector<float> last_hidden) const {
  auto s = std::make_unique<CpuSequence>();
  s->state = std::move(state);
  s->last_hidden = std::move(last_hidden);
  return s;
}

std::unique_ptr<DecodeEngine::Sequence> CpuDecodeEngine::start_prefill(int64_t) {
  auto s = std::make_unique<CpuSequence>();
  s->state = model_.new_state();
  return s;
}

void CpuDecodeEngine::prefill_chunk(Sequence& seq, const int32_t* ids, int64_t n, bool) {
  run(model_, cpu(seq), ids, n, nullptr);
}

bool CpuDecodeEngine::enable_prefill_overlap(std::string* why) {
  *why = "the CPU engine runs one thing at a time (prefill chunks interleave with decode steps, not beside them)";
  return false;
}

int32_t CpuDecodeEngine::first_token(Sequence& seq, const kernels::SamplingParams& params, uint64_t stream,
                                     uint64_t step) {
  const int64_t V = model_.config().vocab_size;
  std::vector<float> logits(V);
  model_.logits(cpu(seq).last_hidden.data(), 1, logits.data());
  cpu(seq).last_hidden = {};
  int32_t token = 0;
  kernels::cpu::sample(logits.data(), V, 1, V, &params, &stream, &step, &token);
  return token;
}

void CpuDecodeEngine::step(const int32_t* ids, int64_t n, Sequence* const* seqs, const kernels::SamplingParams* params,
                           const uint64_t* stream, const uint64_t* step, int32_t* out) {
  const ModelConfig& c = model_.config();
  std::vector<InferenceState*> states(n);
  for (int64_t i = 0; i < n; ++i) states[i] = &cpu(*seqs[i]).state;
  std::vector<float> hidden(n * c.hidden_size), logits(n * c.vocab_size);
  model_.decode_step(ids, n, states.data(), hidden.data());
  model_.logits(hidden.data(), n, logits.data());
  kernels::cpu::sample(logits.data(), c.vocab_size, n, c.vocab_size, params, stream, step, out);
}

}  // namespace ringscan
