// The demo checkpoint's tokenizer: a 4096-id Tekken-style byte-level BPE
// (tests/tokenizer/fixtures/demo, made by tools/tokenizer/make_fixtures.py),
// compiled into ringscan so `make-model --preset demo` writes a complete
// checkpoint folder.
#pragma once
#include <string_view>

namespace ringscan {

// Contents of tokenizer.json and tokenizer_config.json, byte for byte.
std::string_view demo_tokenizer_json();
std::string_view demo_tokenizer_config_json();

}  // namespace ringscan
