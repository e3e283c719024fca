#include "tokenizer/added_vocab.h"

#include <algorithm>
#include <map>

#include "tokenizer/utf8.h"

namespace ringscan::tok {

void AddedTokenMatcher::build(const std::vector<std::string>& patterns, const std::vector<std::int32_t>& token_of) {
  // Build with maps, then flatten into sorted edge lists.
  std::vector<std::map<unsigned char, std::uint32_t>> children(1);
  std::vector<std::int32_t> token(1, -1);
  for (std::size_t i = 0; i < patterns.size(); ++i) {
    const std::string& p = patterns[i];
    if (p.empty()) continue;
    std::uint32_t node = 0;
    for (char c : p) {
      const auto b = static_cast<unsigned char>(c);
      auto it = children[node].find(b);
      if (it == children[node].end()) {
        children.emplace_back();
        token.push_back(-1);
        const auto fresh = static_cast<std::uint32_t>(children.size() - 1);
        children[node][b] = fresh;
        node = fresh;
      } else {
        node = it->second;
      }
    }
    if (token[node] < 0) token[node] = token_of[i];  // the first of equal patterns wins, as in HF
    first_byte_[static_cast<unsigned char>(p[0])] = true;
  }
  nodes_.assign(children.size(), Node{});
  edges_.clear();
  for (std::size_t n = 0; n < children.size(); ++n) {
    nodes_[n].first_child = static_cast<std::uint32_t>(edges_.size());
    nodes_[n].child_count = static_cast<std::uint32_t>(children[n].size());
    nodes_[n].token = token[n];
    for (const auto& [b, c] : children[n]) edges_.push_back(Edge{b, c});
  }
}

std::int32_t AddedTokenMatcher::child(std::uint32_t node, unsigned char byte) const {
  const Node& n = nodes_[node];
  const Edge* begin = edges_.data() + n.first_child;
  const Edge* end = begin + n.child_count;
  const Edge* it = std::lower_bound(begin, end, byte, [](const Edge& e, unsigned char b) { return e.byte < b; });
  return (it != end && it->byte == byte) ? static_cast<std::int32_t>(it->node) : -1;
}

void AddedVocabulary::init(const std::vector<std::string>& normalized_contents) {
  // HF's trie order: special tokens first, then the others, each in file order.
  std::vector<std::string> raw_patterns, norm_patterns;
  std::vector<std::int32_t> raw_index, norm_index;
  for (int pass = 0; pass < 2; ++pass) {
    for (std::size_t i = 0; i < tokens_.size(); ++i) {
      const AddedToken& t = tokens_[i];
      if (t.special != (pass == 0)) continue;
      if (t.normalized) {
        norm_patterns.push_back(normalized_contents[i]);
        norm_index.push_back(static_cast<std::int32_t>(i));
      } else {
        raw_patterns.push_back(t.content);
        raw_index.push_back(static_cast<std::int32_t>(i));
      }
    }
  }
  raw_.build(raw_patterns, raw_index);
  normalized_.build(norm_patterns, norm_index);
  const bool needs_classes = std::any_of(tokens_.begin(), tokens_.end(), [](const AddedToken& t) {
    return t.single_word || t.lstrip || t.rstrip;
  });
  if (needs_classes) {
    word_char_ = std::make_shared<Regex>("[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]", "added tokens");
    space_char_ = std::make_shared<Regex>("\\p{White_Space}", "added tokens");
  }
}

namespace {

std::size_t previous_char_start(std::string_view s, std::size_t end) {
  std::size_t i = end - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return i;
}

}  // namespace

bool AddedVocabulary::ends_with_word(std::string_view s, RegexScratch& scratch) const {
  return !s.empty() && word_char_->matches_at(s, previous_char_start(s, s.size()), scratch);
}

bool AddedVocabulary::starts_with_word(std::string_view s, RegexScratch& scratch) const {
  return !s.empty() && word_char_->matches_at(s, 0, scratch);
}

std::size_t AddedVocabulary::leading_space(std::string_view s, RegexScratch& scratch) const {
  std::size_t i = 0;
  while (i < s.size() && space_char_->matches_at(s, i, scratch)) i += utf8_lead_length(static_cast<unsigned char>(s[i]));
  return i;
}

std::size_t AddedVocabulary::trailing_space_start(std::string_view s, RegexScratch& scratch) const {
  std::size_t i = s.size();
  while (i > 0) {
    const std::size_t p = previous_char_start(s, i);
    if (!space_char_->matches_at(s, p, scratch)) break;
    i = p;
  }
  return i;
}

void AddedVocabulary::split(std::string_view text, bool normalized_group, RegexScratch& scratch,
                            std::vector<AddedSplit>& out) const {
  out.clear();
  const AddedTokenMatcher& matcher = normalized_group ? normalized_ : raw_;
  // Port of HF's AddedVocabulary::find_matches, including its quirks: a match
  // rejected by single_word still consumes its bytes, and rstrip may reach
  // past the start of the next match.
  std::size_t start_offset = 0;
  matcher.find_iter(text, [&](std::size_t start, std::size_t stop, std::int32_t index) {
    const AddedToken& t = tokens_[index];
    if (t.single_word) {
      const bool start_space = start == 0 || !ends_with_word(text.substr(0, start), scratch);
      const bool stop_space = stop == text.size() || !starts_with_word(text.substr(stop), scratch);
      if (!start_space || !stop_space) return;
    }
    if (t.lstrip) start = std::max(trailing_space_start(text.substr(0, start), scratch), start_offset);
    if (t.rstrip) stop += leading_space(text.substr(stop), scratch);
    if (start_offset < start) {
      out.push_back({static_cast<std::uint32_t>(start_offset), static_cast<std::uint32_t>(start), -1});
    }
    out.push_back({static_cast<std::uint32_t>(start), static_cast<std::uint32_t>(stop), t.id});
    start_offset = stop;
  });
  if (start_offset < text.size()) {
    out.push_back({static_cast<std::uint32_t>(start_offset), static_cast<std::uint32_t>(text.size()), -1});
  }
}

}  // namespace ringscan::tok
