// Shared helpers for the tokenizer tests: fixture paths and file reading.
#pragma once
#include <algorithm>
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace ringscan::test {

inline std::string tokenizer_fixtures() { return RINGSCAN_TOKENIZER_FIXTURES; }

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(read_bytes(path)); }

// Python's json.dumps(list_of_ints): "[1, 2, 3]".
inline std::string python_list(const std::vector<std::int32_t>& ids) {
  std::string s = "[";
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(ids[i]);
  }
  return s + "]";
}

// Index of the first difference, or -1.
inline long first_difference(const std::vector<std::int32_t>& a, const std::vector<std::int32_t>& b) {
  const std::size_t n = std::min(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return static_cast<long>(i);
  }
  return a.size() == b.size() ? -1 : static_cast<long>(n);
}

inline std::string around(const std::vector<std::int32_t>& ids, long at) {
  std::string s;
  for (long i = std::max(0L, at - 5); i < std::min<long>(static_cast<long>(ids.size()), at + 6); ++i) {
    // Appended piece by piece: GCC 12 warns falsely (-Wrestrict) on "[" + std::string.
    if (i == at) s += '[';
    s += std::to_string(ids[i]);
    s += i == at ? "] " : " ";
  }
  return s;
}

}  // namespace ringscan::test
