// Shared by the decode tests (CPU and GPU decoders): synthetic prompts and
// generation requests.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "kernels/sampling.h"
#include "runtime/decode.h"

namespace ringscan::test {

// n ids spread over the vocabulary; `salt` makes prompts differ.
inline std::vector<int32_t> prompt_of(int64_t n, int64_t vocab, uint64_t salt) {
  std::vector<int32_t> ids(n);
  for (int64_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>((i * 7919 + salt * 104729 + 31) % vocab);
  return ids;
}

inline GenerationRequest request(uint64_t id, std::vector<int32_t> prompt, int64_t max_new,
                                 kernels::SamplingParams sp = {}) {
  GenerationRequest r;
  r.id = id;
  r.prompt = std::move(prompt);
  r.max_new_tokens = max_new;
  r.sampling = sp;
  return r;
}

}  // namespace ringscan::test
