// Shared by the decode tests (CPU and GPU decoders): synthetic prompts,
// generation requests and the tokens a decoder gives them.
#pragma once
#include <cstdint>
#include <map>
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

// Generated tokens by request id.
using Tokens = std::map<uint64_t, std::vector<int32_t>>;

// Submits every request to `decoder` (Decoder, ShardedDecoder, PrefixSharedDecoder)
// and runs it until idle.
template <class D>
Tokens run_requests(D& decoder, const std::vector<GenerationRequest>& reqs) {
  for (const auto& r : reqs) decoder.submit(r);
  Tokens out;
  for (auto& r : decoder.run()) out[r.id] = std::move(r.tokens);
  return out;
}

}  // namespace ringscan::test
