// How one sequence of L tokens is cut into segments over P ranks (DESIGN.md §4).
//   contiguous: P segments, rank r holds segment r.
//   zigzag:     2P segments, rank r holds segments r and 2P-1-r, so every rank
//               does the same causal attention work.
// Segment sizes differ by at most one token; a segment may be empty (L < P).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ringscan {

enum class LayoutKind { Contiguous, Zigzag };
LayoutKind parse_layout(const std::string& name);  // "contiguous" | "zigzag"
const char* layout_name(LayoutKind k);

struct Segment {
  int64_t begin = 0;  // first position
  int64_t len = 0;
  int owner = 0;      // rank
  int64_t end() const { return begin + len; }
};

struct SequenceLayout {
  LayoutKind kind = LayoutKind::Zigzag;
  int64_t length = 0;
  int ranks = 1;
  std::vector<Segment> segments;  // in sequence order

  // Indices into segments of the ones `rank` holds, in sequence order.
  std::vector<int> segments_of(int rank) const;
  int64_t tokens_of(int rank) const;

  // The state scan runs over "runs" of consecutive segments in which every
  // rank appears once: contiguous has one (ranks 0..P-1); zigzag two (0..P-1,
  // then P-1..0), the second continuing from the first's last segment, which
  // is on the same rank as its own first.
  std::vector<std::vector<int>> scan_runs() const;

  // The rank holding the sequence's last position (its final hidden row, what
  // decode draws the first new token from); -1 for an empty sequence. Not the
  // owner of the last segment when the last segments are empty (length < 2P).
  int last_position_owner() const;
};

SequenceLayout make_layout(int64_t length, int ranks, LayoutKind kind);

}  // namespace ringscan
