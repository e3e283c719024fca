// Small helpers the benchmark programs share.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

namespace ringscan::bench {

inline double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// "1,2,64" -> {1, 2, 64}
inline std::vector<int64_t> parse_list(const std::string& s) {
  std::vector<int64_t> v;
  std::stringstream ss(s);
  std::string x;
  while (std::getline(ss, x, ',')) v.push_back(std::atoll(x.c_str()));
  return v;
}

// n token ids spread over the vocabulary; `salt` makes documents differ.
inline std::vector<int32_t> synthetic_ids(int64_t n, int64_t vocab, uint64_t salt) {
  std::vector<int32_t> ids(n);
  for (int64_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>((i * 7919 + salt * 104729 + 13) % vocab);
  return ids;
}

}  // namespace ringscan::bench
