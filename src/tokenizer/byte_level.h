// GPT-2's byte <-> character table used by ByteLevel pre-tokenizers and
// decoders: printable bytes map to themselves, the other 68 bytes to
// U+0100.. in order, so every byte string becomes a printable string.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace ringscan::tok {

struct ByteLevelTable {
  std::array<char32_t, 256> byte_to_char{};
  std::array<std::string, 256> byte_to_utf8{};  // UTF-8 of byte_to_char
  std::array<std::int16_t, 324> char_to_byte{};  // -1 when the char is not in the alphabet

  static const ByteLevelTable& get();

  // The raw bytes a vocabulary string stands for; false when it holds a
  // character outside the 256-character alphabet.
  bool to_bytes(std::string_view token, std::string& out) const;
};

}  // namespace ringscan::tok
