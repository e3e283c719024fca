// UTF-8 helpers for the tokenizer. Invalid input is never rejected: each
// maximal ill-formed subsequence becomes one U+FFFD, the Unicode "best
// practice" that Python's bytes.decode("utf-8", "replace") and Rust's
// String::from_utf8_lossy (and so HF tokenizers) follow, so ids stay equal.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ringscan::tok {

// Length of the well-formed UTF-8 sequence starting at s[i], or 0 when the
// bytes there are ill-formed; then *bad_len receives the length of the maximal
// ill-formed subpart to replace (>= 1).
std::size_t utf8_sequence_length(std::string_view s, std::size_t i, std::size_t* bad_len);

// True when s is well-formed UTF-8 (no surrogates, no overlongs, <= U+10FFFF).
bool utf8_is_valid(std::string_view s);

// s itself when valid; otherwise a copy in `scratch` with each maximal
// ill-formed subsequence replaced by U+FFFD, returned as a view of `scratch`.
std::string_view utf8_sanitize(std::string_view s, std::string& scratch);
class OffsetMap;
// The same, appending to `map` where each byte of the result came from in `s`.
std::string_view utf8_sanitize(std::string_view s, std::string& scratch, OffsetMap& map);

// Decodes the code point of a well-formed sequence at s[i] (caller checked).
char32_t utf8_decode_at(std::string_view s, std::size_t i, std::size_t* len);

void utf8_append(std::string& out, char32_t cp);

inline std::size_t utf8_lead_length(unsigned char c) {
  return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

}  // namespace ringscan::tok
