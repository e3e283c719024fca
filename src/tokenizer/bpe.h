// The BPE model of an HF tokenizer.json: words (pre-tokenized pieces) to ids
// by applying merges lowest rank first, leftmost first, as HF's Word::merge_all.
//
// In byte-level mode the model works on raw bytes: vocabulary strings are
// mapped back through the ByteLevel alphabet once at load, so encoding never
// builds the mapped ("Ġ...") strings. Otherwise it works on UTF-8 characters.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/flat_map.h"

namespace ringscan::tok {

struct BpeOptions {
  bool byte_level = false;  // a ByteLevel pre-tokenizer feeds the model
  bool ignore_merges = false;
  bool byte_fallback = false;
  bool fuse_unk = false;
  std::optional<std::string> unk_token;
};

// Per-thread working memory of the model.
struct BpeScratch {
  WordCache cache;
  std::vector<std::int32_t> symbols;
  std::vector<std::uint32_t> ranks;
  std::vector<std::int32_t> merged;
  struct Node {
    std::int32_t id, prev, next;
    bool alive;
  };
  std::vector<Node> nodes;
  struct QueueEntry {
    std::uint32_t rank, pos;
    std::int32_t id;
  };
  std::vector<QueueEntry> queue;
};

class BpeModel {
 public:
  BpeModel() = default;
  // `vocab` and `merges` in tokenizer.json's own strings; `where` prefixes errors.
  BpeModel(const std::vector<std::pair<std::string, std::int32_t>>& vocab,
           const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options,
           const std::string& where);

  // Appends the ids of one pre-tokenized piece (raw bytes in byte-level mode).
  void tokenize(std::string_view piece, BpeScratch& scratch, std::vector<std::int32_t>& out) const;

  // The same, and for each id appended the bytes [begin, end) of `piece` it stands
  // for (appended to `spans`). Tokens tile the piece, except that a character dropped
  // for want of an unknown token belongs to no token, and byte-fallback tokens of one
  // character each cover that character's bytes (byte-level) or one byte each.
  void tokenize(std::string_view piece, BpeScratch& scratch, std::vector<std::int32_t>& out,
                std::vector<std::pair<std::uint32_t, std::uint32_t>>& spans) const;

  // Exposed for tests: merges `symbols` in place with the small-word scan or the heap.
  void merge(std::vector<std::int32_t>& symbols, BpeScratch& scratch, bool use_heap) const;

  std::int32_t token_to_id(std::string_view token) const { return vocab_.find(token); }
  const std::vector<std::string>& id_to_token() const { return id_to_token_; }
  std::size_t vocab_entries() const { return vocab_.size(); }
  const BpeOptions& options() const { return options_; }

 private:
  using Span = std::pair<std::uint32_t, std::uint32_t>;
  // `spans` (may be null) receives each symbol's bytes of the piece.
  void initial_symbols(std::string_view piece, std::vector<std::int32_t>& symbols,
                       std::vector<Span>* spans = nullptr) const;
  void add_fallback_or_unk(std::string_view unit, Span where, std::vector<std::int32_t>& symbols,
                           std::vector<Span>* spans, std::optional<std::int32_t>& pending_unk,
                           Span& pending_span) const;
  void merge_small(std::vector<std::int32_t>& symbols, BpeScratch& scratch) const;
  void merge_heap(std::vector<std::int32_t>& symbols, BpeScratch& scratch) const;

  BpeOptions options_;
  std::string where_;
  StringIdMap vocab_;        // tokenizer.json strings -> id
  StringIdMap model_vocab_;  // strings in the model's space (raw bytes when byte-level) -> id
  std::vector<std::string> id_to_token_;  // tokenizer.json strings; empty for unused ids
  MergeMap merges_;
  // Per id, the bytes of a piece it always stands for, or -1 when that depends on how
  // it arose (the unknown token, byte-fallback tokens): then spans are worked out again.
  std::vector<std::int32_t> id_bytes_;
  std::int32_t byte_ids_[256];  // byte-level: id of each single byte, -1 if absent
  std::int32_t byte_fallback_ids_[256];  // id of "<0xXX>", -1 if absent
};

}  // namespace ringscan::tok
