// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace ringscan::io {

// Offset of the first byte that does not start a valid sequence, or npos when `s` is
// entirely valid UTF-8.
size_t utf8_invalid_offset(std::string_view s);

inline bool is_valid_utf8(std::string_view s) { return utf8_invalid_offset(s) == std::string_view::npos; }

// `s` with each invalid byte replaced by U+FFFD, for reporting names that are not UTF-8.
std::string utf8_sanitize(std::string_view s);

}  // namespace ringscan::io
