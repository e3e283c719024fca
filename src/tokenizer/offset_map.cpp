#include "tokenizer/offset_map.h"

#include <algorithm>

namespace ringscan::tok {

void OffsetMap::copied(std::uint64_t bytes) {
  if (bytes == 0) return;
  if (!chunks_.empty() && chunks_.back().copy) {
    chunks_.back().to_end += bytes;
    chunks_.back().from_end += bytes;
  } else {
    chunks_.push_back({to_size_, to_size_ + bytes, from_size_, from_size_ + bytes, true});
  }
  to_size_ += bytes;
  from_size_ += bytes;
}

void OffsetMap::rewritten(std::uint64_t to_bytes, std::uint64_t from_bytes) {
  chunks_.push_back({to_size_, to_size_ + to_bytes, from_size_, from_size_ + from_bytes, false});
  to_size_ += to_bytes;
  from_size_ += from_bytes;
  identity_ = false;
}

std::uint64_t OffsetMap::source_begin(std::uint64_t begin) const {
  if (identity_) return begin;
  if (begin >= to_size_) return from_size_;
  // The chunk holding byte `begin`.
  const auto it = std::upper_bound(chunks_.begin(), chunks_.end(), begin,
                                   [](std::uint64_t p, const Chunk& c) { return p < c.to_end; });
  return it->copy ? it->from_begin + (begin - it->to_begin) : it->from_begin;
}

std::uint64_t OffsetMap::source_end(std::uint64_t end) const {
  if (identity_) return end;
  if (end == 0) return 0;
  // The chunk holding byte `end - 1`.
  const auto it = std::upper_bound(chunks_.begin(), chunks_.end(), end - 1,
                                   [](std::uint64_t p, const Chunk& c) { return p < c.to_end; });
  if (it == chunks_.end()) return from_size_;
  return it->copy ? it->from_begin + (end - it->to_begin) : it->from_end;
}

}  // namespace ringscan::tok
