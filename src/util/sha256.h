// SHA-256 (FIPS 180-4): what identifies a run's tokenizer.json, checkpoint
// files and document contents (run identity, docs/cli.md).
#pragma once
#include <string>
#include <string_view>

namespace ringscan {

// Lowercase hex digest of `data`.
std::string sha256_hex(std::string_view data);

}  // namespace ringscan
