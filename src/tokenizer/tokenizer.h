// HF tokenizer.json byte-level BPE tokenizer, giving the same ids as HF
// `tokenizers` (see docs/tokenizer.md for what is supported and the known
// differences). Documents become ids inside ringscan; a checkpoint folder
// holds tokenizer.json and tokenizer_config.json.
//
//   auto tok = ringscan::Tokenizer::load("demo-model");     // or .../tokenizer.json
//   std::vector<int32_t> ids = tok.encode(text, /*add_special=*/false);
//   std::string back = tok.decode(ids);
//
// A Tokenizer is immutable after loading, cheap to copy (shared state), and
// its const methods may be called from many threads at once.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ringscan {

class Tokenizer {
 public:
  // `path`: a checkpoint directory holding tokenizer.json (tokenizer_config.json
  // and generation_config.json are read when present beside it), or the
  // tokenizer.json file itself. Throws ringscan::Error naming the file and
  // field on anything malformed or unsupported.
  static Tokenizer load(const std::filesystem::path& path);

  // From file contents; `origin` names them in error messages.
  // `tokenizer_config_json` and `generation_config_json` may be empty.
  static Tokenizer from_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json = {},
                             std::string_view generation_config_json = {},
                             const std::string& origin = "tokenizer.json");

  // HF's encode(text, add_special_tokens=add_special).ids. Added tokens written
  // in the text are recognised either way; add_special applies the
  // post-processor template (e.g. a leading <s>). Invalid UTF-8 is first
  // replaced, each maximal ill-formed subsequence by one U+FFFD, as Python's
  // bytes.decode("utf-8", "replace") does.
  std::vector<std::int32_t> encode(std::string_view text, bool add_special) const;

  // encode() that also says where each token came from: token k stands for bytes
  // [begin[k], end[k]) of `text`. Tokens follow the text in order and, in a byte-level
  // tokenizer without normalizer, tile it exactly. Where the text was rewritten before
  // tokenizing (an ill-formed UTF-8 sequence, characters NFC composed), a token
  // covers the whole of what it came from, so neighbours may share bytes. A
  // byte-fallback token of a byte-level model covers its whole byte; tokens the
  // post-processor adds (a leading <s>) and a prefix space ByteLevel inserts cover
  // no bytes: [0, 0) and [at, at).
  struct Encoding {
    std::vector<std::int32_t> ids;
    std::vector<std::uint64_t> begin, end;
  };
  Encoding encode_with_offsets(std::string_view text, bool add_special) const;

  // encode() of many texts on `threads` threads (0: OpenMP's default).
  std::vector<std::vector<std::int32_t>> encode_many(const std::vector<std::string>& texts, bool add_special,
                                                     int threads = 0) const;

  // HF's decode(ids, skip_special_tokens=skip_special). Byte tokens that split
  // a UTF-8 character are joined before conversion; bytes that still do not
  // form valid UTF-8 become U+FFFD. Unlike HF, which drops them silently, an
  // id outside the vocabulary throws ringscan::Error.
  std::string decode(const std::vector<std::int32_t>& ids, bool skip_special = false) const;

  // Largest id + 1 over the model vocabulary and the added tokens.
  std::int32_t vocab_size() const;
  std::optional<std::int32_t> token_to_id(std::string_view token) const;
  // The token's string as written in tokenizer.json (e.g. "Ġthe"), if the id exists.
  std::optional<std::string> id_to_token(std::int32_t id) const;
  // Whether the id is an added token marked "special" (skipped by decode(..., true)).
  bool is_special(std::int32_t id) const;

  // From tokenizer_config.json (bos_token, eos_token, pad_token, unk_token).
  std::optional<std::int32_t> bos_id() const;
  std::optional<std::int32_t> pad_id() const;
  std::optional<std::int32_t> unk_id() const;
  // Ids that end a sequence: tokenizer_config.json's eos_token, then
  // generation_config.json's eos_token_id (one or a list), without repeats.
  std::vector<std::int32_t> eos_ids() const;
  // Whether a document should start with BOS: tokenizer_config.json's
  // add_bos_token when present, else whether the post-processor template
  // puts bos_id() first when add_special is set.
  bool add_bos() const;
  // tokenizer_config.json's chat_template ("" when absent) and the special
  // tokens it writes (e.g. <|im_start|>, <|im_end|>, <think>), by id.
  const std::string& chat_template() const;
  // The tokenizer_config.json that was read ("" when there was none beside tokenizer.json).
  const std::string& config_path() const;
  std::vector<std::int32_t> chat_template_special_ids() const;

  // SHA-256 (lowercase hex) of the tokenizer.json bytes, for output attributes.
  const std::string& hash() const;
  // Where it was loaded from (path, or `origin` for from_json).
  const std::string& source() const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace ringscan
