// libFuzzer target: tokenizer.json loading plus encoding and decoding.
//   input without a NUL byte: a text, encoded by the demo checkpoint's tokenizer
//     (tests/tokenizer/fixtures/demo), so random text reaches a real vocabulary;
//   "tokenizer.json \0 text [\0 tokenizer_config.json]": all three fuzzed.
// Beyond "only ringscan::Error": encode's ids are ids of the vocabulary, and
// decoding them never fails.
#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"
#include "util/json_util.h"

using namespace ringscan;

namespace {

void encode_and_decode(const Tokenizer& tok, std::string_view text) {
  std::vector<std::int32_t> ids;
  for (const bool add_special : {false, true}) {
    try {
      ids = tok.encode(text, add_special);
    } catch (const Error&) {
      return;  // e.g. an unk_token that is needed but not in the vocabulary
    }
    for (std::int32_t id : ids)
      if (!tok.id_to_token(id)) __builtin_trap();  // an id outside the vocabulary
    tok.decode(ids, false);  // must not throw: every id is known
    tok.decode(ids, true);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Tokenizer demo = Tokenizer::from_json(
      read_text_file(RINGSCAN_SOURCE_DIR "/tests/tokenizer/fixtures/demo/tokenizer.json"),
      read_text_file(RINGSCAN_SOURCE_DIR "/tests/tokenizer/fixtures/demo/tokenizer_config.json"), {},
      "demo/tokenizer.json");
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  bool has_json = false;
  const std::string_view json = fuzz::split_at_nul(input, &has_json).first;
  if (!has_json) {
    encode_and_decode(demo, input);
    return 0;
  }
  const std::string_view text = fuzz::split_at_nul(input.substr(json.size() + 1)).first;
  const std::string_view config = fuzz::split_at_nul(input.substr(json.size() + 1)).second;
  fuzz::only_ringscan_errors([&] {
    const Tokenizer tok = Tokenizer::from_json(json, config, {}, "fuzz/tokenizer.json");
    encode_and_decode(tok, text);
  });
  return 0;
}
