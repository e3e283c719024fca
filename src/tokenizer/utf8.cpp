#include "tokenizer/utf8.h"

#include "tokenizer/offset_map.h"

#include <cstring>

namespace ringscan::tok {

namespace {

// Table 3-7 of the Unicode standard: the allowed range of the second byte
// depends on the lead byte; later continuation bytes are always 80..BF.
struct LeadInfo {
  unsigned char length, lo, hi;
};

LeadInfo lead_info(unsigned char c) {
  if (c >= 0xC2 && c <= 0xDF) return {2, 0x80, 0xBF};
  if (c == 0xE0) return {3, 0xA0, 0xBF};
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return {3, 0x80, 0xBF};
  if (c == 0xED) return {3, 0x80, 0x9F};
  if (c == 0xF0) return {4, 0x90, 0xBF};
  if (c >= 0xF1 && c <= 0xF3) return {4, 0x80, 0xBF};
  if (c == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

}  // namespace

std::size_t utf8_sequence_length(std::string_view s, std::size_t i, std::size_t* bad_len) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  const LeadInfo info = lead_info(c);
  if (info.length == 0) {
    *bad_len = 1;
    return 0;
  }
  std::size_t k = 1;
  for (; k < info.length; ++k) {
    if (i + k >= s.size()) break;
    const auto b = static_cast<unsigned char>(s[i + k]);
    const unsigned char lo = k == 1 ? info.lo : 0x80;
    const unsigned char hi = k == 1 ? info.hi : 0xBF;
    if (b < lo || b > hi) break;
  }
  if (k == info.length) return k;
  *bad_len = k;  // the valid prefix of a truncated sequence is one subpart
  return 0;
}

bool utf8_is_valid(std::string_view s) {
  std::size_t i = 0;
  const std::size_t n = s.size();
  while (i < n) {
    // ASCII fast path, 8 bytes at a time.
    if (i + 8 <= n) {
      std::uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      if ((w & 0x8080808080808080ULL) == 0) {
        i += 8;
        continue;
      }
    }
    std::size_t bad = 0;
    const std::size_t len = utf8_sequence_length(s, i, &bad);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

std::string_view utf8_sanitize(std::string_view s, std::string& scratch) {
  if (utf8_is_valid(s)) return s;
  scratch.clear();
  scratch.reserve(s.size() + 16);
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t bad = 0;
    const std::size_t len = utf8_sequence_length(s, i, &bad);
    if (len > 0) {
      scratch.append(s.data() + i, len);
      i += len;
    } else {
      scratch.append("\xEF\xBF\xBD");
      i += bad;
    }
  }
  return scratch;
}

std::string_view utf8_sanitize(std::string_view s, std::string& scratch, OffsetMap& map) {
  const std::string_view out = utf8_sanitize(s, scratch);
  if (out.data() == s.data()) {
    map.copied(s.size());
    return out;
  }
  for (std::size_t i = 0; i < s.size();) {
    std::size_t bad = 0;
    const std::size_t len = utf8_sequence_length(s, i, &bad);
    if (len > 0) map.copied(len), i += len;
    else map.rewritten(3, bad), i += bad;
  }
  return out;
}

char32_t utf8_decode_at(std::string_view s, std::size_t i, std::size_t* len) {
  const auto c = static_cast<unsigned char>(s[i]);
  auto cont = [&](std::size_t k) { return static_cast<char32_t>(static_cast<unsigned char>(s[i + k]) & 0x3F); };
  if (c < 0x80) {
    *len = 1;
    return c;
  }
  if (c < 0xE0) {
    *len = 2;
    return (static_cast<char32_t>(c & 0x1F) << 6) | cont(1);
  }
  if (c < 0xF0) {
    *len = 3;
    return (static_cast<char32_t>(c & 0x0F) << 12) | (cont(1) << 6) | cont(2);
  }
  *len = 4;
  return (static_cast<char32_t>(c & 0x07) << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3);
}

void utf8_append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace ringscan::tok
