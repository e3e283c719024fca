// Shared by the libFuzzer targets (see README.md): a scratch folder for targets
// whose code under test reads files, and the rule every target enforces: hostile
// bytes may only ever end in a ringscan::Error (one sentence for the user). Any
// other exception (std::bad_alloc, std::length_error, a JSON library exception)
// escapes, and libFuzzer reports it as a crash; so do sanitizer reports, leaks,
// allocations over -malloc_limit_mb and inputs slower than -timeout.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "util/error.h"

namespace ringscan::fuzz {

// A folder of this process under $TMPDIR (tmpfs is best), removed at exit.
inline std::string scratch_dir(const std::string& target) {
  const char* tmp = std::getenv("TMPDIR");
  const std::string dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/ringscan-fuzz-" + target + "-" +
                          std::to_string(getpid());
  std::filesystem::create_directories(dir);
  static std::vector<std::string> made;
  if (made.empty()) std::atexit([] {
    for (const std::string& d : made) std::filesystem::remove_all(d);
  });
  made.push_back(dir);
  return dir;
}

inline void write_file(const std::string& path, const uint8_t* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), std::streamsize(size));
}

template <class F>
void only_ringscan_errors(F&& f) {
  try {
    f();
  } catch (const Error&) {
    // The expected outcome for most inputs.
  }
}

// Splits at the first NUL: {before, after}; after is empty without a NUL.
inline std::pair<std::string_view, std::string_view> split_at_nul(std::string_view s, bool* found = nullptr) {
  const size_t nul = s.find('\0');
  if (found) *found = nul != std::string_view::npos;
  if (nul == std::string_view::npos) return {s, {}};
  return {s.substr(0, nul), s.substr(nul + 1)};
}

// The two shards the index mode of fuzz_safetensors maps tensors to (write_seeds
// writes index seeds that name them).
inline const std::vector<std::pair<std::string, std::string>> kShardTensors = {
    {"backbone.embeddings.weight", "model-00001-of-00002.safetensors"},
    {"lm_head.weight", "model-00001-of-00002.safetensors"},
    {"backbone.norm_f.weight", "model-00002-of-00002.safetensors"},
};

}  // namespace ringscan::fuzz
