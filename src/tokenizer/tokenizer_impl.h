// The loaded state behind ringscan::Tokenizer (internal to src/tokenizer and its tests).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "tokenizer/added_vocab.h"
#include "tokenizer/bpe.h"
#include "tokenizer/decoder.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace ringscan {

namespace tok {

// Per-thread working memory for encoding.
struct EncodeState {
  PreTokenizerScratch pre;
  BpeScratch bpe;
  std::string sanitized, normalized;
  std::vector<AddedSplit> raw_splits, normalized_splits;
  // encode_with_offsets: one piece's ids and their bytes of the piece.
  std::vector<std::int32_t> piece_ids;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> spans;
};

// Where encode_into puts each token's bytes of the input (null: nowhere).
struct TokenOffsets {
  std::vector<std::uint64_t>& begin;
  std::vector<std::uint64_t>& end;
};

}  // namespace tok

struct Tokenizer::Impl {
  std::string source;
  std::string sha256;
  std::uint64_t instance_id = 0;  // distinguishes tokenizers in thread-local caches

  // tokenizer.json
  bool nfc = false;
  tok::AddedVocabulary added;
  tok::PreTokenizer pre_tokenizer;
  tok::BpeModel model;
  tok::Decoder decoder;
  bool has_post_processor = false;
  std::vector<std::int32_t> special_prefix, special_suffix;  // the post-processor's template around $A

  // Id tables over the model vocabulary and the added tokens (added tokens win, as in HF).
  std::int32_t vocab_size = 0;
  std::vector<std::string> id_to_string;
  std::vector<bool> id_known;
  std::vector<bool> id_special;
  std::unordered_set<std::string> special_contents;
  std::unordered_map<std::string, std::int32_t> added_ids;  // content -> id
  std::vector<std::string> byte_level_bytes;  // per id, for the plain ByteLevel decoder

  // tokenizer_config.json / generation_config.json
  std::optional<std::int32_t> bos, eos, pad, unk;
  std::vector<std::int32_t> eos_ids;
  std::optional<bool> add_bos_token;
  std::string chat_template;
  std::string config_path;  // the tokenizer_config.json read; "" when there was none

  std::optional<std::int32_t> token_to_id(std::string_view token) const;
  void encode_into(std::string_view text, bool add_special, tok::EncodeState& state,
                   std::vector<std::int32_t>& out, tok::TokenOffsets* offsets = nullptr) const;
};

// Parses tokenizer.json into `impl` (tokenizer_json.cpp).
void parse_tokenizer_json(std::string_view json_text, Tokenizer::Impl& impl);
// Parses tokenizer_config.json and generation_config.json (tokenizer_config.cpp).
void parse_tokenizer_config(std::string_view config_text, const std::string& origin, Tokenizer::Impl& impl);
void parse_generation_config(std::string_view config_text, const std::string& origin, Tokenizer::Impl& impl);

}  // namespace ringscan
