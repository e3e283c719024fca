#include "jobs/result_rows.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

namespace ringscan {

namespace {

// Why computed values cannot be a result ("" when they can): a NaN or infinite log-prob
// (after the first token, which has none) or embedding, e.g. from broken weights.
std::string non_finite_values(const DocumentValues& v) {
  auto count = [](const std::vector<float>& x, size_t from, size_t* first) {
    size_t bad = 0;
    for (size_t i = from; i < x.size(); ++i)
      if (!std::isfinite(x[i])) {
        if (bad++ == 0) *first = i;
      }
    return bad;
  };
  size_t first = 0;
  if (size_t bad = count(v.logprob, 1, &first))
    return "the model computed non-finite log-probs (NaN or infinity) for " + std::to_string(bad) + " of " +
           std::to_string(v.logprob.size() - 1) + " tokens, first at token " + std::to_string(first) +
           "; check the checkpoint's weights and config.json";
  for (const auto* e : {&v.embedding_mean, &v.embedding_last})
    if (size_t bad = count(*e, 0, &first))
      return "the model computed a non-finite embedding (NaN or infinity in " + std::to_string(bad) + " of " +
             std::to_string(e->size()) + " values); check the checkpoint's weights and config.json";
  return "";
}

// -sum of logprob[t] for t in [begin, end), skipping t = 0 (nothing predicts
// the first token): the NLL and the count of scored tokens of a range.
std::pair<double, uint64_t> nll_over(const std::vector<float>& logprob, int64_t begin, int64_t end) {
  double nll = 0;
  uint64_t n = 0;
  for (int64_t i = std::max<int64_t>(begin, 1); i < end; ++i) nll -= logprob[i], ++n;
  return {nll, n};
}

double perplexity_of(double nll, uint64_t n) {
  return n ? std::exp(nll / static_cast<double>(n)) : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace

io::DocumentResult not_computed(int64_t index, const io::Document& doc, const char* status, const std::string& error,
                                std::vector<int32_t> ids) {
  io::DocumentResult r;
  r.index = static_cast<uint64_t>(index);
  r.path = doc.name;
  r.status = status;
  r.error = error;
  r.token_ids = std::move(ids);
  r.nll_sum = r.nll_mean = r.perplexity = std::numeric_limits<double>::quiet_NaN();
  return r;
}

io::DocumentResult not_computed(int64_t index, const io::Document& doc, const char* status, const std::string& error,
                                const DocumentTokens& t) {
  io::DocumentResult r = not_computed(index, doc, status, error, t.ids);
  r.truncated = t.truncated;
  r.text = t.text;
  r.text_begin = t.text_begin;
  r.text_end = t.text_end;
  return r;
}

io::DocumentResult make_result(int64_t index, const io::Document& doc, const DocumentTokens& t,
                               const DocumentValues& v, const JobSpec& spec) {
  constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  if (const std::string why = non_finite_values(v); !why.empty()) {
    return not_computed(index, doc, io::doc_status::kFailed, why, t);
  }
  io::DocumentResult r;
  r.index = static_cast<uint64_t>(index);
  r.path = doc.name;
  r.status = io::doc_status::kOk;
  r.truncated = t.truncated;
  r.token_ids = t.ids;
  r.text = t.text;
  r.text_begin = t.text_begin;
  r.text_end = t.text_end;
  r.nll_sum = r.nll_mean = r.perplexity = nan;
  if (spec.want.logprobs) {
    r.logprob = v.logprob;
    std::tie(r.nll_sum, r.n_scored) = nll_over(v.logprob, 0, static_cast<int64_t>(v.logprob.size()));
    r.nll_mean = r.n_scored ? r.nll_sum / static_cast<double>(r.n_scored) : nan;
    r.perplexity = perplexity_of(r.nll_sum, r.n_scored);
  }
  if (doc.codebase)
    for (const auto& f : t.files) {
      io::FileResult fr;
      fr.path = f.path;
      fr.token_begin = static_cast<uint64_t>(f.begin);
      fr.token_end = static_cast<uint64_t>(f.end);
      fr.status = f.status;
      fr.header = f.header;
      fr.text_begin = f.text_begin;
      fr.text_end = f.text_end;
      fr.nll_sum = fr.perplexity = nan;
      if (spec.want.logprobs) {  // a file's first token is scored in the context of everything before it
        std::tie(fr.nll_sum, fr.n_scored) = nll_over(v.logprob, f.begin, f.end);
        fr.perplexity = perplexity_of(fr.nll_sum, fr.n_scored);
      }
      r.files.push_back(fr);
    }
  r.embedding_mean = v.embedding_mean;
  r.embedding_last = v.embedding_last;
  r.skipped_files = t.skipped;
  return r;
}


io::DocumentResult generation_result(int64_t index, const io::Document& doc, bool truncated,
                                     const GenerationResult& g, const Tokenizer& tok) {
  io::DocumentResult r;
  r.index = static_cast<uint64_t>(index);
  r.path = doc.name;
  r.status = io::doc_status::kOk;
  if (g.reason == StopReason::NonFiniteLogits) {
    r.status = io::doc_status::kFailed;
    r.error = "non-finite logits after " + std::to_string(g.tokens.size()) +
              " generated tokens; check the checkpoint's weights and config.json";
  }
  r.truncated = truncated;
  r.nll_sum = r.nll_mean = r.perplexity = std::numeric_limits<double>::quiet_NaN();
  r.extra = Json{{"generated_ids", g.tokens},
                 {"text", tok.decode(g.tokens, /*skip_special=*/true)},
                 {"finish_reason", g.reason == StopReason::StopId ? "stop"
                                   : g.reason == StopReason::Length ? "length"
                                                                    : "non_finite_logits"},
                 {"n_generated", g.tokens.size()},
                 {"prompt_tokens", g.prompt_tokens},
                 {"first_token_seconds", g.first_token_seconds},
                 {"decode_seconds", g.decode_seconds}};
  return r;
}

}  // namespace ringscan
