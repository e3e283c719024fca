// libFuzzer target: config.json (Python's JSON with bare Infinity/NaN, repeated
// keys refused) parsed into a ModelConfig.
#include "fuzz_util.h"
#include "model/config.h"

using namespace ringscan;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::only_ringscan_errors([&] {
    const ModelConfig c = parse_model_config(parse_json_relaxed(text, "config.json"), "config.json");
    // What is accepted can be written back and read again.
    parse_model_config(parse_json_relaxed(model_config_to_json(c).dump(), "round trip"), "round trip");
  });
  return 0;
}
