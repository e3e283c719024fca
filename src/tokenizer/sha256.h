// SHA-256 (FIPS 180-4), to identify the exact tokenizer.json a run used.
#pragma once
#include <string>
#include <string_view>

namespace ringscan::tok {

// Lowercase hex digest of `data`.
std::string sha256_hex(std::string_view data);

}  // namespace ringscan::tok
