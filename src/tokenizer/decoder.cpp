#include "tokenizer/decoder.h"

#include <cstdint>
#include <string_view>

#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"

namespace ringscan::tok {

namespace {

std::vector<std::string> byte_level(std::vector<std::string> tokens) {
  const ByteLevelTable& bl = ByteLevelTable::get();
  std::string bytes, raw;
  for (const std::string& t : tokens) {
    if (bl.to_bytes(t, raw)) bytes += raw;
    else bytes += t;  // a token with characters outside the alphabet passes through as UTF-8
  }
  std::string scratch;
  return {std::string(utf8_sanitize(bytes, scratch))};
}

// "<0xAB>" -> 0xAB, as Rust's u8::from_str_radix on the two characters
// (which also accepts a leading '+'); -1 when not a byte token.
int byte_token_value(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (t[3] == '+') return hex(t[4]);
  const int hi = hex(t[3]), lo = hex(t[4]);
  return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
}

std::vector<std::string> byte_fallback(std::vector<std::string> tokens) {
  std::vector<std::string> out;
  std::string pending;
  auto flush = [&]() {
    if (pending.empty()) return;
    if (utf8_is_valid(pending)) {
      out.push_back(pending);
    } else {
      for (std::size_t i = 0; i < pending.size(); ++i) out.emplace_back("\xEF\xBF\xBD");
    }
    pending.clear();
  };
  for (std::string& t : tokens) {
    const int b = byte_token_value(t);
    if (b >= 0) {
      pending.push_back(static_cast<char>(b));
    } else {
      flush();
      out.push_back(std::move(t));
    }
  }
  flush();
  return out;
}

std::vector<std::string> strip(std::vector<std::string> tokens, char32_t content, std::size_t start,
                               std::size_t stop) {
  for (std::string& t : tokens) {
    std::vector<std::size_t> offsets;  // byte offset of each character, plus the end
    for (std::size_t i = 0; i < t.size(); i += utf8_lead_length(static_cast<unsigned char>(t[i]))) {
      offsets.push_back(i);
    }
    const std::size_t n = offsets.size();
    offsets.push_back(t.size());
    auto char_at = [&](std::size_t k) {
      std::size_t len = 0;
      return utf8_decode_at(t, offsets[k], &len);
    };
    std::size_t start_cut = 0;
    for (std::size_t k = 0; k < n && k < start && char_at(k) == content; ++k) start_cut = k + 1;
    std::size_t stop_cut = n;
    for (std::size_t k = 0; k < stop && k < n - start_cut; ++k) {
      const std::size_t index = n - k - 1;
      if (char_at(index) != content) break;
      stop_cut = index;
    }
    t = t.substr(offsets[start_cut], offsets[stop_cut] - offsets[start_cut]);
  }
  return tokens;
}

std::vector<std::string> replace(std::vector<std::string> tokens, const std::string& pattern,
                                 const std::string& content) {
  if (pattern.empty()) return tokens;
  for (std::string& t : tokens) {
    std::string out;
    std::size_t pos = 0;
    for (std::size_t hit; (hit = t.find(pattern, pos)) != std::string::npos; pos = hit + pattern.size()) {
      out.append(t, pos, hit - pos);
      out += content;
    }
    out.append(t, pos, std::string::npos);
    t = std::move(out);
  }
  return tokens;
}

}  // namespace

std::string Decoder::decode(std::vector<std::string> tokens) const {
  if (!present_) {
    std::string out;
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      if (i) out += ' ';
      out += tokens[i];
    }
    return out;
  }
  for (const DecoderStep& s : steps_) {
    switch (s.kind) {
      case DecoderStep::Kind::ByteLevel: tokens = byte_level(std::move(tokens)); break;
      case DecoderStep::Kind::ByteFallback: tokens = byte_fallback(std::move(tokens)); break;
      case DecoderStep::Kind::Fuse: {
        std::string all;
        for (const std::string& t : tokens) all += t;
        tokens.assign(1, std::move(all));
        break;
      }
      case DecoderStep::Kind::Strip:
        tokens = strip(std::move(tokens), s.strip_content, s.strip_start, s.strip_stop);
        break;
      case DecoderStep::Kind::Replace:
        tokens = replace(std::move(tokens), s.replace_pattern, s.replace_content);
        break;
    }
  }
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

}  // namespace ringscan::tok
