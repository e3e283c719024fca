// Added tokens (tokenizer.json "added_tokens"): found in the text before
// pre-tokenization, as HF's AddedVocabulary does: leftmost-longest matches,
// tokens with normalized=false on the raw text, normalized=true ones on the
// normalized pieces in between, with single_word / lstrip / rstrip applied.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/regex.h"

namespace ringscan::tok {

struct AddedToken {
  std::int32_t id = -1;
  std::string content;
  bool single_word = false, lstrip = false, rstrip = false, normalized = true, special = false;
};

// A piece of the input: either an added token (id >= 0) or text (id < 0).
struct AddedSplit {
  std::uint32_t begin, end;
  std::int32_t id;
};

// Byte trie over the token contents of one group (raw or normalized).
class AddedTokenMatcher {
 public:
  // `patterns[i]` is matched for token index `token_of[i]` into the token list.
  void build(const std::vector<std::string>& patterns, const std::vector<std::int32_t>& token_of);
  bool empty() const { return nodes_.size() <= 1; }
  // Leftmost-longest, non-overlapping: calls f(begin, end, token_index).
  template <class F>
  void find_iter(std::string_view text, F&& f) const;

 private:
  struct Node {
    std::uint32_t first_child = 0, child_count = 0;
    std::int32_t token = -1;
  };
  struct Edge {
    unsigned char byte;
    std::uint32_t node;
  };
  std::int32_t child(std::uint32_t node, unsigned char byte) const;
  std::vector<Node> nodes_;
  std::vector<Edge> edges_;
  std::array<bool, 256> first_byte_{};
};

class AddedVocabulary {
 public:
  AddedVocabulary() = default;
  // `normalize` turns a token's content into its normalized form (for normalized=true).
  template <class Normalize>
  AddedVocabulary(std::vector<AddedToken> tokens, Normalize&& normalize);

  const std::vector<AddedToken>& tokens() const { return tokens_; }
  bool has_raw() const { return !raw_.empty(); }
  bool has_normalized() const { return !normalized_.empty(); }

  // Splits `text` on the tokens with normalized=false (raw) or true (normalized).
  void split(std::string_view text, bool normalized_group, RegexScratch& scratch,
             std::vector<AddedSplit>& out) const;

 private:
  void init(const std::vector<std::string>& normalized_contents);
  bool ends_with_word(std::string_view s, RegexScratch& scratch) const;
  bool starts_with_word(std::string_view s, RegexScratch& scratch) const;
  std::size_t leading_space(std::string_view s, RegexScratch& scratch) const;
  std::size_t trailing_space_start(std::string_view s, RegexScratch& scratch) const;

  std::vector<AddedToken> tokens_;
  AddedTokenMatcher raw_, normalized_;
  // Rust regex's \w and \s (Unicode), which HF uses for single_word and strip.
  std::shared_ptr<Regex> word_char_, space_char_;
};

template <class Normalize>
AddedVocabulary::AddedVocabulary(std::vector<AddedToken> tokens, Normalize&& normalize)
    : tokens_(std::move(tokens)) {
  std::vector<std::string> normalized_contents;
  normalized_contents.reserve(tokens_.size());
  for (const AddedToken& t : tokens_) normalized_contents.push_back(t.normalized ? normalize(t.content) : t.content);
  init(normalized_contents);
}

template <class F>
void AddedTokenMatcher::find_iter(std::string_view text, F&& f) const {
  if (empty()) return;
  const std::size_t n = text.size();
  std::size_t pos = 0;
  while (pos < n) {
    while (pos < n && !first_byte_[static_cast<unsigned char>(text[pos])]) ++pos;
    if (pos >= n) break;
    std::uint32_t node = 0;
    std::int32_t best_token = -1;
    std::size_t best_end = 0;
    for (std::size_t j = pos; j < n; ++j) {
      const std::int32_t next = child(node, static_cast<unsigned char>(text[j]));
      if (next < 0) break;
      node = static_cast<std::uint32_t>(next);
      if (nodes_[node].token >= 0) {
        best_token = nodes_[node].token;
        best_end = j + 1;
      }
    }
    if (best_token >= 0) {
      f(pos, best_end, best_token);
      pos = best_end;
    } else {
      ++pos;
    }
  }
}

}  // namespace ringscan::tok
