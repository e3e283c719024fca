// Where the bytes of a rewritten text came from. The tokenizer rewrites its input
// (invalid UTF-8 becomes U+FFFD, NFC composes characters) before cutting it into
// tokens; an OffsetMap takes a byte range of the rewritten text back to the range of
// the text it was made from, so that token offsets point into the caller's bytes.
//
// The rewritten text is a sequence of chunks: copied bytes (mapped byte for byte)
// and rewritten units (a U+FFFD for an ill-formed sequence, an NFC run for the
// characters it was made from), each of which maps to its whole source as one block.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

namespace ringscan::tok {

class OffsetMap {
 public:
  // Appends `bytes` copied unchanged from the source (merged with a copy before it).
  void copied(std::uint64_t bytes);
  // Appends `to_bytes` of rewritten text made from the next `from_bytes` of the source.
  void rewritten(std::uint64_t to_bytes, std::uint64_t from_bytes);

  bool identity() const { return identity_; }
  // The source range of the rewritten range [begin, end) (begin <= end <= size()).
  // A position inside a rewritten unit widens to the unit's whole source.
  std::uint64_t source_begin(std::uint64_t begin) const;
  std::uint64_t source_end(std::uint64_t end) const;
  std::uint64_t size() const { return to_size_; }

 private:
  struct Chunk {
    std::uint64_t to_begin, to_end, from_begin, from_end;
    bool copy;
  };
  std::vector<Chunk> chunks_;
  std::uint64_t to_size_ = 0, from_size_ = 0;
  bool identity_ = true;
};

}  // namespace ringscan::tok
