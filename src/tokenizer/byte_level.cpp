#include "tokenizer/byte_level.h"

#include "tokenizer/utf8.h"

namespace ringscan::tok {

namespace {

ByteLevelTable build() {
  ByteLevelTable t;
  t.char_to_byte.fill(-1);
  std::array<bool, 256> printable{};
  for (int b = '!'; b <= '~'; ++b) printable[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) printable[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) printable[b] = true;
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) t.byte_to_char[b] = printable[b] ? static_cast<char32_t>(b) : next++;
  for (int b = 0; b < 256; ++b) {
    utf8_append(t.byte_to_utf8[b], t.byte_to_char[b]);
    t.char_to_byte[t.byte_to_char[b]] = static_cast<std::int16_t>(b);
  }
  return t;
}

}  // namespace

const ByteLevelTable& ByteLevelTable::get() {
  static const ByteLevelTable table = build();
  return table;
}

bool ByteLevelTable::to_bytes(std::string_view token, std::string& out) const {
  out.clear();
  for (std::size_t i = 0; i < token.size();) {
    std::size_t bad = 0;
    const std::size_t len = utf8_sequence_length(token, i, &bad);
    if (len == 0) return false;
    std::size_t n = 0;
    const char32_t cp = utf8_decode_at(token, i, &n);
    if (cp >= char_to_byte.size() || char_to_byte[cp] < 0) return false;
    out.push_back(static_cast<char>(char_to_byte[cp]));
    i += len;
  }
  return true;
}

}  // namespace ringscan::tok
