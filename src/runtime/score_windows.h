// Scoring a document longer than the model's context with a sliding window and a
// stride (HF's "perplexity of fixed-length models" recipe; llama-perplexity's
// --ppl-stride): window k holds tokens [k*stride, k*stride + window) (cut at the
// document's end) and scores only the tokens the windows before it did not, so every
// token is scored exactly once. A token of window k > 0 therefore sees at least
// window - stride tokens before it; those of the first window see only what precedes
// them in the document (token t sees t tokens), as in a plain run. No BOS is
// inserted at a later window's start: its first token is simply the oldest context.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

namespace ringscan {

struct ScoreWindow {
  int64_t begin = 0, end = 0;  // the tokens the model sees
  int64_t first_scored = 0;    // tokens [first_scored, end) take their log-prob from it
};

// The windows over n tokens; window >= 1, 1 <= stride <= window. One window [0, n)
// when n <= window.
std::vector<ScoreWindow> score_windows(int64_t n, int64_t window, int64_t stride);

// log p(ids[t] | the window's tokens before t) for every token (NaN for token 0),
// `window_logprobs(ids of a window)` giving the plain log-probs of one window.
std::vector<float> windowed_logprobs(const std::vector<int32_t>& ids, int64_t window, int64_t stride,
                                     const std::function<std::vector<float>(const std::vector<int32_t>&)>& window_logprobs);

}  // namespace ringscan
