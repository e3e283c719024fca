#include "runtime/score_windows.h"

#include <algorithm>
#include <limits>

#include "util/error.h"

namespace ringscan {

std::vector<ScoreWindow> score_windows(int64_t n, int64_t window, int64_t stride) {
  if (window < 1 || stride < 1 || stride > window)
    throw Error("a scoring window needs 1 <= stride <= window, got window " + std::to_string(window) + " and stride " +
                std::to_string(stride));
  std::vector<ScoreWindow> out;
  int64_t scored_to = 0;
  for (int64_t begin = 0; scored_to < n; begin += stride) {
    const int64_t end = std::min(begin + window, n);
    out.push_back({begin, end, scored_to});
    scored_to = end;
  }
  return out;
}

std::vector<float> windowed_logprobs(const std::vector<int32_t>& ids, int64_t window, int64_t stride,
                                     const std::function<std::vector<float>(const std::vector<int32_t>&)>& window_logprobs) {
  const int64_t n = static_cast<int64_t>(ids.size());
  std::vector<float> out(ids.size(), std::numeric_limits<float>::quiet_NaN());
  for (const ScoreWindow& w : score_windows(n, window, stride)) {
    const std::vector<int32_t> part(ids.begin() + w.begin, ids.begin() + w.end);
    const std::vector<float> lp = window_logprobs(part);
    if (static_cast<int64_t>(lp.size()) != w.end - w.begin)
      throw Error("a scoring window of " + std::to_string(w.end - w.begin) + " tokens gave " +
                  std::to_string(lp.size()) + " log-probs");
    std::copy(lp.begin() + (w.first_scored - w.begin), lp.end(), out.begin() + w.first_scored);
  }
  return out;
}

}  // namespace ringscan
