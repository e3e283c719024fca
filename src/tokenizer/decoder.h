// Decoders of tokenizer.json (ByteLevel, ByteFallback, Fuse, Strip, Replace
// with a string pattern; Sequence is flattened at load): token strings back
// to text, as HF's decode_chain does, including U+FFFD for invalid bytes.
#pragma once
#include <string>
#include <vector>

namespace ringscan::tok {

struct DecoderStep {
  enum class Kind { ByteLevel, ByteFallback, Fuse, Strip, Replace } kind = Kind::ByteLevel;
  char32_t strip_content = 0;
  std::size_t strip_start = 0, strip_stop = 0;
  std::string replace_pattern, replace_content;
};

class Decoder {
 public:
  Decoder() = default;
  // present == false: tokenizer.json has "decoder": null, and HF joins tokens with spaces.
  Decoder(bool present, std::vector<DecoderStep> steps) : present_(present), steps_(std::move(steps)) {}

  bool present() const { return present_; }
  bool is_plain_byte_level() const {
    return present_ && steps_.size() == 1 && steps_[0].kind == DecoderStep::Kind::ByteLevel;
  }
  std::string decode(std::vector<std::string> tokens) const;

 private:
  bool present_ = false;
  std::vector<DecoderStep> steps_;
};

}  // namespace ringscan::tok
