#include "runtime/final_hidden.h"

#include <algorithm>

#include "kernels/log_softmax.h"

namespace ringscan {

std::vector<float> HostFinalHidden::logits(int64_t r0, int64_t n) const {
  std::vector<float> out(n * model_.config().vocab_size);
  model_.logits(hidden_ + r0 * model_.config().hidden_size, n, out.data());
  return out;
}

void HostFinalHidden::target_logprobs(int64_t r0, int64_t n, const int32_t* targets, float* out) const {
  // In row blocks, so that the [rows, vocab] logits stay small (32 MiB).
  const int64_t V = model_.config().vocab_size;
  const int64_t block = std::max<int64_t>(1, (32 << 20) / (V * 4));
  for (int64_t b0 = 0; b0 < n; b0 += block) {
    const int64_t nr = std::min(block, n - b0);
    const std::vector<float> l = logits(r0 + b0, nr);
    kernels::cpu::token_log_prob(l.data(), nr, V, targets + b0, out + b0);
  }
}

const float* HostFinalHidden::host_rows(int64_t r0, int64_t, std::vector<float>&) const {
  return hidden_ + r0 * model_.config().hidden_size;
}

void LogitsSink::feed(int64_t row0, const FinalHidden& block) const {
  for (int64_t r0 = 0; r0 < block.rows(); r0 += max_rows) {
    const int64_t n = std::min(max_rows, block.rows() - r0);
    take(row0 + r0, n, block.logits(r0, n));
  }
}

}  // namespace ringscan
