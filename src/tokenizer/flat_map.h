// Open-addressing hash tables for the tokenizer's hot loops: vocabulary
// lookups by bytes, merge lookups by id pair, and the per-thread word cache.
// They keep keys in one arena, so lookups do not allocate.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace ringscan::tok {

inline std::uint64_t hash_bytes(std::string_view s) {
  // 8 bytes per step, multiply-xorshift mixing; good enough for short keys.
  std::uint64_t h = 0x9E3779B97F4A7C15ULL ^ (s.size() * 0xC2B2AE3D27D4EB4FULL);
  const char* p = s.data();
  std::size_t n = s.size();
  while (n >= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * 0xFF51AFD7ED558CCDULL;
    h ^= h >> 32;
    p += 8;
    n -= 8;
  }
  // The last 0..7 bytes, without a byte-wise copy through memory (which
  // stalls store-to-load forwarding): two overlapping 4-byte loads, or 3 bytes.
  std::uint64_t w = 0;
  if (n >= 4) {
    std::uint32_t a, b;
    std::memcpy(&a, p, 4);
    std::memcpy(&b, p + n - 4, 4);
    w = (static_cast<std::uint64_t>(a) << 32) | b;
  } else if (n > 0) {
    const auto* u = reinterpret_cast<const unsigned char*>(p);
    w = (static_cast<std::uint64_t>(u[0]) << 16) | (static_cast<std::uint64_t>(u[n / 2]) << 8) | u[n - 1];
  }
  h = (h ^ w) * 0xC4CEB9FE1A85EC53ULL;
  h ^= h >> 29;
  h *= 0xFF51AFD7ED558CCDULL;
  h ^= h >> 32;
  return h;
}

inline std::size_t table_capacity_for(std::size_t n) {
  std::size_t cap = 16;
  while (cap < n * 2) cap <<= 1;
  return cap;
}

// bytes -> int32 id; fixed after construction.
class StringIdMap {
 public:
  void reserve(std::size_t n) {
    slots_.assign(table_capacity_for(n), Slot{});
    mask_ = slots_.size() - 1;
  }
  // Returns false when the key is already present (the value is kept).
  bool insert(std::string_view key, std::int32_t id) {
    if (slots_.empty() || (size_ + 1) * 2 > slots_.size()) grow();
    const std::uint64_t h = hash_bytes(key);
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.id < 0) {
        s = Slot{tag(h), static_cast<std::uint32_t>(arena_.size()), static_cast<std::uint32_t>(key.size()), id};
        arena_.append(key);
        ++size_;
        return true;
      }
      if (s.hash == tag(h) && key_of(s) == key) return false;
    }
  }
  std::int32_t find(std::string_view key) const { return find(key, hash_bytes(key)); }
  // With the key's hash_bytes() already at hand.
  std::int32_t find(std::string_view key, std::uint64_t h) const {
    if (slots_.empty()) return -1;
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.id < 0) return -1;
      if (s.hash == tag(h) && key_of(s) == key) return s.id;
    }
  }
  std::size_t size() const { return size_; }

 private:
  // 16 bytes: the table is probed once per pre-token, so it should stay in cache.
  struct Slot {
    std::uint32_t hash = 0;  // high half of the hash (the low half picks the slot)
    std::uint32_t offset = 0, length = 0;
    std::int32_t id = -1;
  };
  static std::uint32_t tag(std::uint64_t h) { return static_cast<std::uint32_t>(h >> 32); }
  std::string_view key_of(const Slot& s) const { return std::string_view(arena_).substr(s.offset, s.length); }
  void grow() {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(old.empty() ? 16 : old.size() * 2, Slot{});
    mask_ = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.id < 0) continue;
      for (std::size_t i = hash_bytes(key_of(s)) & mask_;; i = (i + 1) & mask_) {
        if (slots_[i].id < 0) {
          slots_[i] = s;
          break;
        }
      }
    }
  }
  std::vector<Slot> slots_;
  std::size_t mask_ = 0, size_ = 0;
  std::string arena_;
};

// (left id, right id) -> (rank, merged id).
class MergeMap {
 public:
  struct Merge {
    std::uint32_t rank;
    std::int32_t id;
  };
  void reserve(std::size_t n) {
    slots_.assign(table_capacity_for(n), Slot{});
    mask_ = slots_.size() - 1;
  }
  // A later duplicate pair overwrites the earlier one, as in HF's HashMap.
  void insert_or_assign(std::int32_t a, std::int32_t b, Merge m) {
    if (slots_.empty() || (size_ + 1) * 2 > slots_.size()) grow();
    const std::uint64_t k = key(a, b);
    for (std::size_t i = mix(k) & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.key == kEmpty) {
        s = Slot{k, m};
        ++size_;
        return;
      }
      if (s.key == k) {
        s.merge = m;
        return;
      }
    }
  }
  const Merge* find(std::int32_t a, std::int32_t b) const {
    if (slots_.empty()) return nullptr;
    const std::uint64_t k = key(a, b);
    for (std::size_t i = mix(k) & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == k) return &s.merge;
      if (s.key == kEmpty) return nullptr;
    }
  }
  std::size_t size() const { return size_; }

 private:
  static constexpr std::uint64_t kEmpty = ~0ULL;
  struct Slot {
    std::uint64_t key = kEmpty;
    Merge merge{0, -1};
  };
  static std::uint64_t key(std::int32_t a, std::int32_t b) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
  }
  static std::uint64_t mix(std::uint64_t k) {
    k *= 0x9E3779B97F4A7C15ULL;
    return k ^ (k >> 29);
  }
  void grow() {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(old.empty() ? 16 : old.size() * 2, Slot{});
    mask_ = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.key == kEmpty) continue;
      for (std::size_t i = mix(s.key) & mask_;; i = (i + 1) & mask_) {
        if (slots_[i].key == kEmpty) {
          slots_[i] = s;
          break;
        }
      }
    }
  }
  std::vector<Slot> slots_;
  std::size_t mask_ = 0, size_ = 0;
};

// Per-thread cache: word bytes -> its ids. Cleared when full (no eviction
// bookkeeping in the hot path; frequent words come straight back).
class WordCache {
 public:
  explicit WordCache(std::size_t max_entries = 1 << 15) : max_entries_(max_entries) {
    slots_.assign(table_capacity_for(max_entries), Slot{});
    mask_ = slots_.size() - 1;
  }
  // Appends the cached ids of `word` to `out`; false when absent.
  bool get(std::string_view word, std::uint64_t h, std::vector<std::int32_t>& out) const {
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key_length == kEmpty) return false;
      if (s.hash == tag(h) && s.key_length == word.size() &&
          std::memcmp(keys_.data() + s.key_offset, word.data(), word.size()) == 0) {
        out.insert(out.end(), ids_.begin() + s.ids_offset, ids_.begin() + s.ids_offset + s.ids_length);
        return true;
      }
    }
  }
  // `word` must be shorter than 65535 bytes (callers cache short words only).
  void put(std::string_view word, std::uint64_t h, const std::int32_t* ids, std::size_t n) {
    if (size_ >= max_entries_) clear();
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.key_length == kEmpty) {
        s = Slot{tag(h), static_cast<std::uint32_t>(keys_.size()), static_cast<std::uint32_t>(ids_.size()),
                 static_cast<std::uint16_t>(word.size()), static_cast<std::uint16_t>(n)};
        keys_.append(word);
        ids_.insert(ids_.end(), ids, ids + n);
        ++size_;
        return;
      }
      if (s.hash == tag(h) && s.key_length == word.size() &&
          std::memcmp(keys_.data() + s.key_offset, word.data(), word.size()) == 0) {
        return;
      }
    }
  }
  void clear() {
    std::fill(slots_.begin(), slots_.end(), Slot{});
    keys_.clear();
    ids_.clear();
    size_ = 0;
  }

 private:
  static constexpr std::uint16_t kEmpty = 0xFFFF;
  struct Slot {  // 16 bytes
    std::uint32_t hash = 0;
    std::uint32_t key_offset = 0, ids_offset = 0;
    std::uint16_t key_length = kEmpty, ids_length = 0;
  };
  static std::uint32_t tag(std::uint64_t h) { return static_cast<std::uint32_t>(h >> 32); }
  std::vector<Slot> slots_;
  std::size_t mask_ = 0, size_ = 0, max_entries_;
  std::string keys_;
  std::vector<std::int32_t> ids_;
};

}  // namespace ringscan::tok
