// The committed HF transformers fixtures (tests/fixtures/hf/<name>/: a
// checkpoint, cases.json with input ids and logits .npy, generate.json), for
// the CPU and GPU engines' parity tests.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace ringscan::test {

inline std::string hf_fixtures_root() { return std::string(RINGSCAN_SOURCE_DIR) + "/tests/fixtures/hf"; }

// The fixture folders holding `marker` (cases.json: logits; generate.json:
// greedy generations), sorted.
inline std::vector<std::string> hf_fixture_names(const char* marker = "cases.json") {
  namespace fs = std::filesystem;
  std::vector<std::string> names;
  if (fs::is_directory(hf_fixtures_root()))
    for (const auto& e : fs::directory_iterator(hf_fixtures_root()))
      if (fs::exists(e.path() / marker)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Largest |a - b| and the scale it is judged against: the largest |b|.
struct Diff {
  double max_abs = 0, scale = 0;
};
inline Diff compare(const float* a, const float* b, int64_t n) {
  Diff d;
  for (int64_t i = 0; i < n; ++i) {
    d.max_abs = std::max(d.max_abs, static_cast<double>(std::fabs(a[i] - b[i])));
    d.scale = std::max(d.scale, static_cast<double>(std::fabs(b[i])));
  }
  return d;
}

// A gtest parameter name from a fixture name.
inline std::string param_name(std::string s) {
  for (auto& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}

}  // namespace ringscan::test
