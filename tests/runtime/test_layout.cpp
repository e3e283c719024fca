#include <gtest/gtest.h>

#include "runtime/layout.h"

using namespace ringscan;

TEST(Layout, SegmentsTileTheSequenceAndBalance) {
  for (auto kind : {LayoutKind::Contiguous, LayoutKind::Zigzag})
    for (int P = 1; P <= 8; ++P)
      for (int64_t L : {0, 1, 3, 7, 8, 64, 1001}) {
        SequenceLayout l = make_layout(L, P, kind);
        ASSERT_EQ(l.segments.size(), static_cast<size_t>(kind == LayoutKind::Contiguous ? P : 2 * P));
        int64_t pos = 0, lo = L, hi = 0;
        for (const auto& s : l.segments) {
          EXPECT_EQ(s.begin, pos);
          pos += s.len;
          lo = std::min(lo, s.len);
          hi = std::max(hi, s.len);
        }
        EXPECT_EQ(pos, L);
        EXPECT_LE(hi - lo, 1) << "segment sizes differ by at most one token";
        int64_t held = 0;
        for (int r = 0; r < P; ++r) held += l.tokens_of(r);
        EXPECT_EQ(held, L);
      }
}

TEST(Layout, ZigzagPairsChunks) {
  SequenceLayout l = make_layout(80, 4, LayoutKind::Zigzag);
  EXPECT_EQ(l.segments_of(0), (std::vector<int>{0, 7}));
  EXPECT_EQ(l.segments_of(3), (std::vector<int>{3, 4}));
  auto runs = l.scan_runs();
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0], (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(runs[1], (std::vector<int>{4, 5, 6, 7}));
  EXPECT_EQ(l.segments[runs[0].back()].owner, l.segments[runs[1].front()].owner);
}

// Causal attention work (query-key pairs) per rank: zigzag equalises it,
// contiguous gives the last rank ~2P-1 times the first's.
TEST(Layout, ZigzagBalancesCausalWork) {
  const int P = 4;
  const int64_t L = 4096;
  for (auto kind : {LayoutKind::Contiguous, LayoutKind::Zigzag}) {
    SequenceLayout l = make_layout(L, P, kind);
    std::vector<double> work(P, 0);
    for (const auto& s : l.segments)
      for (int64_t t = s.begin; t < s.end(); ++t) work[s.owner] += t + 1;
    double lo = *std::min_element(work.begin(), work.end()), hi = *std::max_element(work.begin(), work.end());
    if (kind == LayoutKind::Zigzag) EXPECT_LT(hi / lo, 1.001);
    else EXPECT_GT(hi / lo, 6.9);
  }
}
