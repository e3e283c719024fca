// Unicode Normalization Form C, for tokenizer.json files whose normalizer is
// NFC. Tables are generated (tools/tokenizer/gen_nfc_tables.py); see
// unicode_version() for the data's Unicode version.
#pragma once
#include <string>
#include <string_view>

namespace ringscan::tok {

// NFC of valid UTF-8 `s`: `s` itself when it is unchanged, else a view of `scratch`.
std::string_view nfc(std::string_view s, std::string& scratch);

class OffsetMap;
// The same, appending to `map` where each byte of the result came from in `s`.
std::string_view nfc(std::string_view s, std::string& scratch, OffsetMap& map);

const char* nfc_unicode_version();

}  // namespace ringscan::tok
