// The segment-state scan against a sequential fold.
//
// Inputs are generated deterministically from (seed, segment index), so every
// rank rebuilds every segment locally and folds them in double precision in
// sequence order: the reference needs no communication at all.
//
// Tolerance: the prefix H = sum_j (prod of the decays after j) * S_j over the
// n segments (and carry) before this one. Any association of these products
// and sums in fp32 is within gamma_2n ~ 2n*u = n*FLT_EPSILON of the exact
// value, relative to sum_j |prod a| * |S_j| (the fold of absolute values);
// we allow 2n*FLT_EPSILON of that scale (<= 18 ulp-scale for P <= 8 with a
// carry). Decay products: n*FLT_EPSILON relative. Zero scale means exact.
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "comm_test_env.h"

namespace ringscan::comm::test {
namespace {

struct Segment {
  std::vector<float> a;  // [n_heads]
  std::vector<float> S;  // [n_heads][state_elems]
};

Segment make_segment(std::uint64_t seed, int index, int nh, std::size_t se) {
  std::mt19937_64 rng(seed * 1000003ULL + static_cast<std::uint64_t>(index + 17));
  std::uniform_real_distribution<float> decay(0.3f, 1.0f), value(-1.0f, 1.0f);
  Segment s{std::vector<float>(nh), std::vector<float>(nh * se)};
  for (auto& x : s.a) x = decay(rng);
  for (auto& x : s.S) x = value(rng);
  return s;
}

// Segments whose fold is exact in fp32: decays 1/2 or 1, small integer states.
Segment make_exact_segment(std::uint64_t seed, int index, int nh, std::size_t se) {
  std::mt19937_64 rng(seed * 7919ULL + static_cast<std::uint64_t>(index + 3));
  std::uniform_int_distribution<int> coin(0, 1), value(-8, 8);
  Segment s{std::vector<float>(nh), std::vector<float>(nh * se)};
  for (auto& x : s.a) x = coin(rng) ? 1.0f : 0.5f;
  for (auto& x : s.S) x = static_cast<float>(value(rng));
  return s;
}

struct Prefix {
  std::vector<double> H, D, scale;  // exact-ish prefix, its decay, fold of |terms|
  int terms = 0;                    // segments (and carry) folded into it
};

// prefixes[i] = carry o seq[0] o ... o seq[i-1], in double.
std::vector<Prefix> sequential_prefixes(const std::vector<Segment>& seq, const Segment* carry, int nh,
                                        std::size_t se) {
  Prefix cur{std::vector<double>(nh * se, 0.0), std::vector<double>(nh, 1.0), std::vector<double>(nh * se, 0.0), 0};
  auto fold = [&](const Segment& s) {
    for (int h = 0; h < nh; ++h) {
      for (std::size_t e = 0; e < se; ++e) {
        const std::size_t i = h * se + e;
        cur.H[i] = s.a[h] * cur.H[i] + s.S[i];
        cur.scale[i] = s.a[h] * cur.scale[i] + std::fabs(s.S[i]);
      }
      cur.D[h] *= s.a[h];
    }
    cur.terms += 1;
  };
  if (carry) fold(*carry);
  std::vector<Prefix> out;
  for (const auto& s : seq) {
    out.push_back(cur);
    fold(s);
  }
  return out;
}

// Empty string when H and D match the reference within the stated bound.
std::string compare(const std::vector<float>& H, const std::vector<float>& D, const Prefix& ref, bool exact) {
  const double tol = exact ? 0.0 : 2.0 * ref.terms * FLT_EPSILON;
  std::size_t bad = 0;
  std::ostringstream first;
  for (std::size_t i = 0; i < H.size(); ++i) {
    const double err = std::fabs(static_cast<double>(H[i]) - ref.H[i]);
    if (!(err <= tol * ref.scale[i])) {
      if (bad++ == 0)
        first << "state[" << i << "] = " << H[i] << ", expected " << ref.H[i] << " (|err| " << err << " > "
              << tol * ref.scale[i] << ")";
    }
  }
  const double dtol = exact ? 0.0 : ref.terms * FLT_EPSILON;
  for (std::size_t h = 0; h < D.size(); ++h) {
    const double err = std::fabs(static_cast<double>(D[h]) - ref.D[h]);
    if (!(err <= dtol * ref.D[h])) {
      if (bad++ == 0) first << "decay[" << h << "] = " << D[h] << ", expected " << ref.D[h];
    }
  }
  if (bad == 0) return "";
  std::ostringstream msg;
  msg << bad << " value(s) off after " << ref.terms << " segment(s); first: " << first.str();
  return msg.str();
}

struct Outputs {
  std::vector<float> H, D;
};

// Runs the scan with this rank's segment; carry is passed on every rank when
// given (the scan must read it only on the first position).
Outputs run_scan(const std::vector<int>& order, const Segment& mine, const Segment* carry, int nh, std::size_t se) {
  const float nan = std::numeric_limits<float>::quiet_NaN();  // unwritten outputs stay NaN and fail
  SpaceBuffer<float> a(mine.a), S(mine.S), H(nh * se, nan), D(nh, nan);
  SpaceBuffer<float> ca(carry ? carry->a : std::vector<float>{}), cs(carry ? carry->S : std::vector<float>{});
  StateScanArgs args;
  args.n_heads = nh;
  args.state_elems = se;
  args.decay = a.data();
  args.state = S.data();
  args.prefix_state = H.data();
  args.prefix_decay = D.data();
  if (carry) {
    args.carry_decay = ca.data();
    args.carry_state = cs.data();
  }
  world().exclusive_state_scan(order, args);
  return {H.download(), D.download()};
}

int position_of(const std::vector<int>& order, int rank) {
  for (std::size_t i = 0; i < order.size(); ++i)
    if (order[i] == rank) return static_cast<int>(i);
  return -1;
}

std::vector<int> natural_order(int P) {
  std::vector<int> o(P);
  for (int i = 0; i < P; ++i) o[i] = i;
  return o;
}

std::vector<int> reversed_order(int P) {
  std::vector<int> o(P);
  for (int i = 0; i < P; ++i) o[i] = P - 1 - i;
  return o;
}

// Same permutation on every rank: same seed, same binary.
std::vector<int> shuffled_order(int P, std::uint64_t seed) {
  auto o = natural_order(P);
  std::mt19937_64 rng(seed);
  std::shuffle(o.begin(), o.end(), rng);
  return o;
}

void check_order(const std::vector<int>& order, int nh, std::size_t se, std::uint64_t seed, bool with_carry,
                 const std::string& name) {
  const int P = world().size();
  std::vector<Segment> seq;
  for (int i = 0; i < P; ++i) seq.push_back(make_segment(seed, i, nh, se));
  const Segment carry = make_segment(seed, -1, nh, se);
  const auto refs = sequential_prefixes(seq, with_carry ? &carry : nullptr, nh, se);
  const int pos = position_of(order, world().rank());
  const auto out = run_scan(order, seq[pos], with_carry ? &carry : nullptr, nh, se);
  EXPECT_EQ(compare(out.H, out.D, refs[pos], false), "")
      << name << ": rank " << world().rank() << " (position " << pos << "), n_heads " << nh << ", state_elems " << se;
}

TEST(StateScan, NaturalOrderMatchesSequentialFold) {
  for (int nh : {1, 3, 8})
    for (std::size_t se : {1, 5, 64, 1000}) check_order(natural_order(world().size()), nh, se, 11 + nh + se, false, "natural");
}

TEST(StateScan, FirstPositionGetsTheIdentityExactly) {
  const int nh = 4;
  const std::size_t se = 33;
  const auto mine = make_segment(5, world().rank(), nh, se);
  const auto out = run_scan(reversed_order(world().size()), mine, nullptr, nh, se);
  if (world().rank() == world().size() - 1) {
    for (float x : out.H) EXPECT_EQ(x, 0.0f);
    for (float x : out.D) EXPECT_EQ(x, 1.0f);
  }
}

TEST(StateScan, ReversedAndShuffledOrders) {
  const int P = world().size();
  for (int nh : {2, 5})
    for (std::size_t se : {3, 200}) {
      check_order(reversed_order(P), nh, se, 101 + se, false, "reversed");
      check_order(shuffled_order(P, 7 + se), nh, se, 202 + se, false, "shuffled");
    }
}

TEST(StateScan, CarryPrecedesTheFirstSegment) {
  const int P = world().size();
  check_order(natural_order(P), 3, 50, 303, true, "natural+carry");
  check_order(reversed_order(P), 3, 50, 304, true, "reversed+carry");
  check_order(shuffled_order(P, 99), 2, 7, 305, true, "shuffled+carry");
}

TEST(StateScan, OutputsMayOverwriteInputs) {
  const int P = world().size(), nh = 3;
  const std::size_t se = 21;
  std::vector<Segment> seq;
  for (int i = 0; i < P; ++i) seq.push_back(make_segment(606, i, nh, se));
  const auto refs = sequential_prefixes(seq, nullptr, nh, se);
  const int r = world().rank();
  SpaceBuffer<float> a(seq[r].a), S(seq[r].S);
  StateScanArgs args;
  args.n_heads = nh;
  args.state_elems = se;
  args.decay = a.data();
  args.state = S.data();
  args.prefix_state = S.data();
  args.prefix_decay = a.data();
  world().exclusive_state_scan(args);
  EXPECT_EQ(compare(S.download(), a.download(), refs[r], false), "") << "rank " << r;
}

// next_state = decay * H + S, the inclusive result (what the next run of
// segments takes as its carry), also when it overwrites the input state.
TEST(StateScan, NextStateIsTheInclusiveResult) {
  const int P = world().size(), nh = 3, r = world().rank();
  const std::size_t se = 17;
  for (bool with_carry : {false, true}) {
    std::vector<Segment> seq;
    for (int i = 0; i < P; ++i) seq.push_back(make_segment(707, i, nh, se));
    const Segment carry = make_segment(707, -1, nh, se);
    std::vector<Segment> one_more = seq;
    one_more.push_back(make_segment(707, P, nh, se));  // its prefix is the last position's inclusive result
    const auto refs = sequential_prefixes(one_more, with_carry ? &carry : nullptr, nh, se);
    const std::vector<int> order = shuffled_order(P, 42);
    const int pos = position_of(order, r);
    SpaceBuffer<float> a(seq[pos].a), S(seq[pos].S), H(nh * se, -7.0f);
    SpaceBuffer<float> ca(carry.a), cs(carry.S);
    StateScanArgs args;
    args.n_heads = nh;
    args.state_elems = se;
    args.decay = a.data();
    args.state = S.data();
    args.prefix_state = H.data();
    args.next_state = S.data();
    if (with_carry) args.carry_decay = ca.data(), args.carry_state = cs.data();
    world().exclusive_state_scan(order, args);
    EXPECT_EQ(compare(H.download(), {}, refs[pos], false), "") << "rank " << r << " carry " << with_carry;
    EXPECT_EQ(compare(S.download(), {}, refs[pos + 1], false), "") << "rank " << r << " carry " << with_carry;
  }
}

// DESIGN.md §4 zigzag: 2P chunks, rank r holds chunks r and 2P-1-r. One scan
// up the ranks over the first halves, one down the ranks over the second
// halves, the last rank carrying the first half's total (computed locally).
TEST(StateScan, ZigzagLayoutWithTwoScans) {
  const int P = world().size(), r = world().rank();
  const int nh = 3;
  const std::size_t se = 40;
  std::vector<Segment> chunks;
  for (int c = 0; c < 2 * P; ++c) chunks.push_back(make_segment(404, c, nh, se));
  const auto refs = sequential_prefixes(chunks, nullptr, nh, se);

  const Segment& first = chunks[r];
  const auto up = run_scan(natural_order(P), first, nullptr, nh, se);
  EXPECT_EQ(compare(up.H, up.D, refs[r], false), "") << "first half, chunk " << r;

  Segment carry{std::vector<float>(nh), std::vector<float>(nh * se)};
  if (r == P - 1) {  // inclusive result of the first scan: (D*a, a*H + S)
    for (int h = 0; h < nh; ++h) {
      carry.a[h] = up.D[h] * first.a[h];
      for (std::size_t e = 0; e < se; ++e)
        carry.S[h * se + e] = first.a[h] * up.H[h * se + e] + first.S[h * se + e];
    }
  }
  const int second = 2 * P - 1 - r;
  const auto down = run_scan(reversed_order(P), chunks[second], r == P - 1 ? &carry : nullptr, nh, se);
  EXPECT_EQ(compare(down.H, down.D, refs[second], false), "") << "second half, chunk " << second;
}

TEST(StateScan, ExactWhenFp32RoundingCannotOccur) {
  const int P = world().size();
  const int nh = 4;
  const std::size_t se = 129;
  for (const auto& order : {natural_order(P), shuffled_order(P, 5)}) {
    std::vector<Segment> seq;
    for (int i = 0; i < P; ++i) seq.push_back(make_exact_segment(55, i, nh, se));
    const Segment carry = make_exact_segment(55, -1, nh, se);
    const auto refs = sequential_prefixes(seq, &carry, nh, se);
    const int pos = position_of(order, world().rank());
    const auto out = run_scan(order, seq[pos], &carry, nh, se);
    EXPECT_EQ(compare(out.H, out.D, refs[pos], true), "") << "position " << pos;
  }
}

// Which positions send in which round, derived backwards from the last round
// (iteratively, unlike comm/state_scan_schedule.h): in round k position p
// sends to q = p^2^k if q < P and either q is higher (q folds it into its
// prefix) or q still sends in a later round (q needs its block total).
std::vector<std::vector<bool>> expected_sends(int P) {
  int R = 0;
  while ((1 << R) < P) ++R;
  std::vector<std::vector<bool>> sends(R, std::vector<bool>(P, false));
  std::vector<bool> sends_later(P, false);
  for (int k = R - 1; k >= 0; --k) {
    for (int p = 0; p < P; ++p) {
      const int q = p ^ (1 << k);
      sends[k][p] = q < P && (q > p || sends_later[q]);
    }
    for (int p = 0; p < P; ++p) sends_later[p] = sends_later[p] || sends[k][p];
  }
  return sends;
}

TEST(StateScan, BytesFollowTheButterflySchedule) {
  const int P = world().size(), r = world().rank();
  const int nh = 3;
  const std::size_t se = 100;
  const std::uint64_t pair_bytes = nh * (1 + se) * sizeof(float);
  const auto sends = expected_sends(P);
  const int R = static_cast<int>(sends.size());

  for (const auto& order : {natural_order(P), shuffled_order(P, 31)}) {
    const int pos = position_of(order, r);
    std::uint64_t my_sends = 0, my_recvs = 0;
    for (int k = 0; k < R; ++k) {
      const int q = pos ^ (1 << k);
      if (sends[k][pos]) ++my_sends;
      if (q < P && sends[k][q]) ++my_recvs;
    }
    world().reset_counters();
    {
      auto scope = world().counter_scope(labels::state);
      run_scan(order, make_segment(9, pos, nh, se), nullptr, nh, se);
    }
    const Traffic t = world().traffic(labels::state);
    EXPECT_EQ(t.messages_sent, my_sends) << "position " << pos << " of " << P;
    EXPECT_EQ(t.bytes_sent, my_sends * pair_bytes);
    EXPECT_EQ(t.messages_received, my_recvs);
    EXPECT_EQ(t.bytes_received, my_recvs * pair_bytes);
    EXPECT_EQ(world().total_traffic().bytes_sent, t.bytes_sent) << "the scan booked bytes outside its scope";
    EXPECT_EQ(world_sum(static_cast<long long>(t.bytes_sent)), world_sum(static_cast<long long>(t.bytes_received)));

    // Closed form for powers of two: R - (leading one bits of pos in R bits)
    // messages, R*P - (P-1) in all.
    if ((P & (P - 1)) == 0) {
      int leading_ones = 0;
      for (int b = R - 1; b >= 0 && ((pos >> b) & 1); --b) ++leading_ones;
      EXPECT_EQ(t.messages_sent, static_cast<std::uint64_t>(R - leading_ones));
      EXPECT_EQ(world_sum(static_cast<long long>(t.messages_sent)), static_cast<long long>(R) * P - (P - 1));
    }
  }
  // Hand-counted totals (see comm/state_scan_schedule.h): P = 1..8 -> 0, 1, 3, 5, 8, 11, 14, 17.
  const long long hand[] = {0, 0, 1, 3, 5, 8, 11, 14, 17};
  if (P <= 8) {
    long long total = 0;
    for (int k = 0; k < R; ++k)
      for (int p = 0; p < P; ++p) total += sends[k][p];
    EXPECT_EQ(total, hand[P]);
  }
}

}  // namespace
}  // namespace ringscan::comm::test
