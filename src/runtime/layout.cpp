#include "runtime/layout.h"

#include "util/error.h"

namespace ringscan {

LayoutKind parse_layout(const std::string& name) {
  if (name == "contiguous") return LayoutKind::Contiguous;
  if (name == "zigzag") return LayoutKind::Zigzag;
  throw Error("--layout must be contiguous or zigzag, got \"" + name + "\"");
}

const char* layout_name(LayoutKind k) { return k == LayoutKind::Contiguous ? "contiguous" : "zigzag"; }

SequenceLayout make_layout(int64_t length, int ranks, LayoutKind kind) {
  if (ranks < 1) throw Error("a sequence layout needs at least one rank");
  SequenceLayout l;
  l.kind = kind;
  l.length = length;
  l.ranks = ranks;
  const int n = kind == LayoutKind::Contiguous ? ranks : 2 * ranks;
  for (int i = 0; i < n; ++i) {
    Segment s;
    s.begin = length * i / n;
    s.len = length * (i + 1) / n - s.begin;
    s.owner = (kind == LayoutKind::Contiguous || i < ranks) ? i : 2 * ranks - 1 - i;
    l.segments.push_back(s);
  }
  return l;
}

std::vector<int> SequenceLayout::segments_of(int rank) const {
  std::vector<int> out;
  for (size_t i = 0; i < segments.size(); ++i)
    if (segments[i].owner == rank) out.push_back(static_cast<int>(i));
  return out;
}

int64_t SequenceLayout::tokens_of(int rank) const {
  int64_t n = 0;
  for (const auto& s : segments)
    if (s.owner == rank) n += s.len;
  return n;
}

std::vector<std::vector<int>> SequenceLayout::scan_runs() const {
  std::vector<std::vector<int>> runs(kind == LayoutKind::Contiguous ? 1 : 2);
  for (int i = 0; i < static_cast<int>(segments.size()); ++i) runs[i < ranks ? 0 : 1].push_back(i);
  return runs;
}

int SequenceLayout::last_position_owner() const {
  int holder = -1;
  for (const auto& s : segments)
    if (s.len > 0 && s.end() == length) holder = s.owner;
  return holder;
}

}  // namespace ringscan
