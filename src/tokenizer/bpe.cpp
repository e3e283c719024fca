#include "tokenizer/bpe.h"

#include <algorithm>
#include <cstdio>
#include <limits>

#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

namespace ringscan::tok {

namespace {

constexpr std::uint32_t kNoMerge = std::numeric_limits<std::uint32_t>::max();
// HF caches words shorter than this many bytes; longer ones are rare and big.
constexpr std::size_t kMaxCachedWord = 256;
// Words up to this many symbols use a plain scan for the best pair: no heap or
// stale entries, and about as fast as the heap at this size (timed ad hoc). The
// scan is quadratic, so long words (a 1 MB run of letters) use the heap.
// Both give the same merges (tests/tokenizer: HeapAndScanMergeAlike).
constexpr std::size_t kSmallWord = 48;

}  // namespace

BpeModel::BpeModel(const std::vector<std::pair<std::string, std::int32_t>>& vocab,
                   const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options,
                   const std::string& where)
    : options_(std::move(options)), where_(where) {
  std::int32_t max_id = -1;
  vocab_.reserve(vocab.size());
  model_vocab_.reserve(vocab.size());
  for (const auto& [token, id] : vocab) {
    if (id < 0) throw Error(where + ": model.vocab gives token \"" + token + "\" the negative id " + std::to_string(id));
    if (!vocab_.insert(token, id)) throw Error(where + ": model.vocab lists token \"" + token + "\" twice");
    max_id = std::max(max_id, id);
  }
  id_to_token_.assign(static_cast<std::size_t>(max_id + 1), std::string());
  std::vector<bool> used(id_to_token_.size(), false);
  const ByteLevelTable& bl = ByteLevelTable::get();
  std::string raw;
  for (const auto& [token, id] : vocab) {
    if (used[id]) {
      throw Error(where + ": model.vocab gives id " + std::to_string(id) + " to both \"" + id_to_token_[id] +
                  "\" and \"" + token + "\"");
    }
    used[id] = true;
    id_to_token_[id] = token;
    if (options_.byte_level) {
      // Tokens with characters outside the byte alphabet can never come out
      // of a ByteLevel pre-tokenizer, so the model never needs them.
      if (bl.to_bytes(token, raw)) model_vocab_.insert(raw, id);
    } else {
      model_vocab_.insert(token, id);
    }
  }
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    byte_fallback_ids_[b] = vocab_.find(buf);
    const char raw_byte = static_cast<char>(b);
    byte_ids_[b] = options_.byte_level ? model_vocab_.find(std::string_view(&raw_byte, 1)) : -1;
  }
  id_bytes_.assign(id_to_token_.size(), -1);
  for (std::size_t id = 0; id < id_to_token_.size(); ++id) {
    if (!used[id]) continue;
    if (options_.byte_level) {
      if (bl.to_bytes(id_to_token_[id], raw)) id_bytes_[id] = static_cast<std::int32_t>(raw.size());
    } else {
      id_bytes_[id] = static_cast<std::int32_t>(id_to_token_[id].size());
    }
  }
  if (options_.byte_fallback)
    for (std::int32_t id : byte_fallback_ids_)
      if (id >= 0) id_bytes_[id] = -1;
  if (options_.unk_token)
    if (const std::int32_t unk = vocab_.find(*options_.unk_token); unk >= 0) id_bytes_[unk] = -1;
  merges_.reserve(merges.size());
  for (std::size_t rank = 0; rank < merges.size(); ++rank) {
    // Plain references, not a structured binding: clang before 16 cannot capture those in the lambda.
    const std::string& a = merges[rank].first;
    const std::string& b = merges[rank].second;
    auto id_of = [&](const std::string& t) {
      const std::int32_t id = vocab_.find(t);
      if (id < 0) {
        throw Error(where + ": model.merges[" + std::to_string(rank) + "] (\"" + a + "\" + \"" + b +
                    "\") needs token \"" + t + "\", which is not in model.vocab");
      }
      return id;
    };
    const std::int32_t ia = id_of(a), ib = id_of(b), merged = id_of(a + b);
    merges_.insert_or_assign(ia, ib, MergeMap::Merge{static_cast<std::uint32_t>(rank), merged});
  }
}

void BpeModel::add_fallback_or_unk(std::string_view unit, Span where, std::vector<std::int32_t>& symbols,
                                   std::vector<Span>* spans, std::optional<std::int32_t>& pending_unk,
                                   Span& pending_span) const {
  if (options_.byte_fallback) {
    bool all = true;
    for (char c : unit) all = all && byte_fallback_ids_[static_cast<unsigned char>(c)] >= 0;
    if (all) {
      // Like HF, byte tokens do not flush a pending unknown token.
      const bool per_byte = unit.size() == where.second - where.first;
      for (std::size_t k = 0; k < unit.size(); ++k) {
        symbols.push_back(byte_fallback_ids_[static_cast<unsigned char>(unit[k])]);
        if (spans) {
          const auto b = static_cast<std::uint32_t>(where.first + k);
          spans->push_back(per_byte ? Span{b, b + 1} : where);
        }
      }
      return;
    }
  }
  if (!options_.unk_token) return;  // HF drops the character when there is no unk_token
  const std::int32_t unk = vocab_.find(*options_.unk_token);
  if (unk < 0) {
    throw Error(where_ + ": model.unk_token \"" + *options_.unk_token +
                "\" is needed for an unknown character but is not in model.vocab");
  }
  if (pending_unk && !options_.fuse_unk) {
    symbols.push_back(*pending_unk);
    if (spans) spans->push_back(pending_span);
    pending_unk.reset();
  }
  if (pending_unk) {
    pending_span.second = where.second;  // fused
  } else {
    pending_span = where;
  }
  pending_unk = unk;
}

void BpeModel::initial_symbols(std::string_view piece, std::vector<std::int32_t>& symbols,
                               std::vector<Span>* spans) const {
  symbols.clear();
  if (spans) spans->clear();
  std::optional<std::int32_t> pending_unk;
  Span pending_span{0, 0};
  auto known = [&](std::int32_t id, Span where) {
    if (pending_unk) {
      symbols.push_back(*pending_unk);
      if (spans) spans->push_back(pending_span);
    }
    pending_unk.reset();
    symbols.push_back(id);
    if (spans) spans->push_back(where);
  };
  if (options_.byte_level) {
    const ByteLevelTable& bl = ByteLevelTable::get();
    for (std::size_t i = 0; i < piece.size(); ++i) {
      const auto c = static_cast<unsigned char>(piece[i]);
      const Span where{static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(i + 1)};
      const std::int32_t id = byte_ids_[c];
      if (id >= 0) known(id, where);
      else add_fallback_or_unk(bl.byte_to_utf8[c], where, symbols, spans, pending_unk, pending_span);
    }
  } else {
    for (std::size_t i = 0; i < piece.size();) {
      const std::size_t len = utf8_lead_length(static_cast<unsigned char>(piece[i]));
      const std::string_view unit = piece.substr(i, len);
      const Span where{static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(i + len)};
      const std::int32_t id = model_vocab_.find(unit);
      if (id >= 0) known(id, where);
      else add_fallback_or_unk(unit, where, symbols, spans, pending_unk, pending_span);
      i += len;
    }
  }
  if (pending_unk) {
    symbols.push_back(*pending_unk);
    if (spans) spans->push_back(pending_span);
  }
}

void BpeModel::merge_small(std::vector<std::int32_t>& s, BpeScratch& scratch) const {
  std::size_t n = s.size();
  auto& ranks = scratch.ranks;
  auto& merged = scratch.merged;
  ranks.resize(n);
  merged.resize(n);
  auto set_pair = [&](std::size_t i) {
    const MergeMap::Merge* m = merges_.find(s[i], s[i + 1]);
    ranks[i] = m ? m->rank : kNoMerge;
    merged[i] = m ? m->id : -1;
  };
  for (std::size_t i = 0; i + 1 < n; ++i) set_pair(i);
  while (n > 1) {
    std::size_t best = 0;
    for (std::size_t i = 1; i + 1 < n; ++i) {
      if (ranks[i] < ranks[best]) best = i;  // strict: the leftmost of equal ranks wins
    }
    if (ranks[best] == kNoMerge) break;
    s[best] = merged[best];
    s.erase(s.begin() + static_cast<std::ptrdiff_t>(best) + 1);
    ranks.erase(ranks.begin() + static_cast<std::ptrdiff_t>(best) + 1);
    merged.erase(merged.begin() + static_cast<std::ptrdiff_t>(best) + 1);
    --n;
    if (best + 1 < n) set_pair(best);
    else ranks[best] = kNoMerge;
    if (best > 0) set_pair(best - 1);
  }
}

void BpeModel::merge_heap(std::vector<std::int32_t>& s, BpeScratch& scratch) const {
  // HF's algorithm: a min-heap of (rank, position) over a linked list, with
  // stale entries skipped when popped.
  auto& nodes = scratch.nodes;
  auto& queue = scratch.queue;
  const std::size_t n = s.size();
  nodes.resize(n);
  queue.clear();
  auto later = [](const BpeScratch::QueueEntry& a, const BpeScratch::QueueEntry& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  };
  for (std::size_t i = 0; i < n; ++i) {
    nodes[i] = {s[i], static_cast<std::int32_t>(i) - 1, i + 1 < n ? static_cast<std::int32_t>(i + 1) : -1, true};
  }
  for (std::size_t i = 0; i + 1 < n; ++i) {
    if (const MergeMap::Merge* m = merges_.find(s[i], s[i + 1])) {
      queue.push_back({m->rank, static_cast<std::uint32_t>(i), m->id});
    }
  }
  std::make_heap(queue.begin(), queue.end(), later);
  while (!queue.empty()) {
    std::pop_heap(queue.begin(), queue.end(), later);
    const BpeScratch::QueueEntry top = queue.back();
    queue.pop_back();
    BpeScratch::Node& left = nodes[top.pos];
    if (!left.alive || left.next < 0) continue;
    const BpeScratch::Node right = nodes[left.next];
    const MergeMap::Merge* current = merges_.find(left.id, right.id);
    if (!current || current->id != top.id) continue;  // stale entry
    nodes[left.next].alive = false;
    left.id = top.id;
    left.next = right.next;
    if (right.next >= 0) nodes[right.next].prev = static_cast<std::int32_t>(top.pos);
    if (left.prev >= 0) {
      if (const MergeMap::Merge* m = merges_.find(nodes[left.prev].id, left.id)) {
        queue.push_back({m->rank, static_cast<std::uint32_t>(left.prev), m->id});
        std::push_heap(queue.begin(), queue.end(), later);
      }
    }
    if (left.next >= 0) {
      if (const MergeMap::Merge* m = merges_.find(left.id, nodes[left.next].id)) {
        queue.push_back({m->rank, top.pos, m->id});
        std::push_heap(queue.begin(), queue.end(), later);
      }
    }
  }
  s.clear();
  for (std::size_t i = 0; i < n; ++i) {
    if (nodes[i].alive) s.push_back(nodes[i].id);
  }
}

void BpeModel::merge(std::vector<std::int32_t>& symbols, BpeScratch& scratch, bool use_heap) const {
  if (symbols.size() < 2) return;
  if (use_heap) merge_heap(symbols, scratch);
  else merge_small(symbols, scratch);
}

void BpeModel::tokenize(std::string_view piece, BpeScratch& scratch, std::vector<std::int32_t>& out) const {
  if (piece.empty()) return;
  const std::uint64_t h = hash_bytes(piece);
  if (options_.ignore_merges) {
    const std::int32_t id = model_vocab_.find(piece, h);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  const bool cacheable = piece.size() < kMaxCachedWord;
  if (cacheable && scratch.cache.get(piece, h, out)) return;
  auto& symbols = scratch.symbols;
  initial_symbols(piece, symbols);
  merge(symbols, scratch, symbols.size() > kSmallWord);
  if (cacheable) scratch.cache.put(piece, h, symbols.data(), symbols.size());
  out.insert(out.end(), symbols.begin(), symbols.end());
}

void BpeModel::tokenize(std::string_view piece, BpeScratch& scratch, std::vector<std::int32_t>& out,
                        std::vector<Span>& spans) const {
  const std::size_t first = out.size();
  tokenize(piece, scratch, out);
  // Usually each id stands for a fixed string, and the ids tile the piece.
  std::uint64_t total = 0;
  bool fixed = true;
  for (std::size_t k = first; k < out.size() && fixed; ++k) {
    const std::int32_t id = out[k];
    fixed = id >= 0 && static_cast<std::size_t>(id) < id_bytes_.size() && id_bytes_[id] >= 0;
    if (fixed) total += static_cast<std::uint64_t>(id_bytes_[id]);
  }
  if (fixed && total == piece.size()) {
    std::uint32_t at = 0;
    for (std::size_t k = first; k < out.size(); ++k) {
      const auto n = static_cast<std::uint32_t>(id_bytes_[out[k]]);
      spans.push_back({at, at + n});
      at += n;
    }
    return;
  }
  // Otherwise (unknown or byte-fallback tokens, dropped characters): merge again,
  // following each symbol's bytes.
  out.resize(first);
  if (options_.ignore_merges) {
    const std::int32_t id = model_vocab_.find(piece);
    if (id >= 0) {
      out.push_back(id);
      spans.push_back({0, static_cast<std::uint32_t>(piece.size())});
      return;
    }
  }
  std::vector<Span> initial;
  auto& symbols = scratch.symbols;
  initial_symbols(piece, symbols, &initial);
  const std::size_t n = symbols.size();
  if (n < 2) {
    out.insert(out.end(), symbols.begin(), symbols.end());
    spans.insert(spans.end(), initial.begin(), initial.end());
    return;
  }
  // The heap merge gives the same merges as the scan and keeps its nodes: each live
  // node stands for the initial symbols up to the next live one.
  merge_heap(symbols, scratch);
  std::size_t k = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (!scratch.nodes[i].alive) continue;
    std::size_t j = i + 1;
    while (j < n && !scratch.nodes[j].alive) ++j;
    out.push_back(symbols[k++]);
    spans.push_back({initial[i].first, initial[j - 1].second});
  }
}

}  // namespace ringscan::tok
