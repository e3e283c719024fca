// Sub-groups (--sp N) and the traffic counters' labels.
#include <cstdint>
#include <vector>

#include "comm_test_env.h"

namespace ringscan::comm::test {
namespace {

TEST(Split, ContiguousGroupsWithReversedKeys) {
  const int P = world().size(), r = world().rank();
  for (int g : {1, 2, 3, P}) {
    const int color = r / g;
    const int first = color * g;
    const int group_size = std::min(g, P - first);
    // key = -rank: the sub-communicator orders ranks backwards.
    auto sub = world().split(color, -r);
    EXPECT_NE(sub, nullptr);
    if (!sub) continue;
    EXPECT_EQ(sub->size(), group_size) << "group size " << g;
    EXPECT_EQ(sub->rank(), group_size - 1 - (r - first)) << "group size " << g;
    EXPECT_EQ(sub->backend_name(), world().backend_name());

    // Gather world ranks in sub-rank order: the group's ranks, descending.
    SpaceBuffer<std::int64_t> mine(std::vector<std::int64_t>{r}), all(group_size, -1);
    sub->all_gather(mine.data(), 1, all.data());
    std::vector<std::int64_t> expect;
    for (int q = first + group_size - 1; q >= first; --q) expect.push_back(q);
    EXPECT_EQ(all.download(), expect) << "group size " << g;

    // A state scan inside the group: exact with unit decays and integer states,
    // H = sum of the states of the group members before this one in sub-rank order.
    const int nh = 2;
    const std::size_t se = 3;
    SpaceBuffer<float> a(nh, 1.0f), S(nh * se, static_cast<float>(r + 1)), H(nh * se, -7.0f);
    StateScanArgs args;
    args.n_heads = nh;
    args.state_elems = se;
    args.decay = a.data();
    args.state = S.data();
    args.prefix_state = H.data();
    sub->exclusive_state_scan(args);
    float before = 0;
    for (int q = first + group_size - 1; q > r; --q) before += static_cast<float>(q + 1);
    EXPECT_EQ(H.download(), std::vector<float>(nh * se, before)) << "group size " << g;
  }
}

TEST(Split, NegativeColorLeavesARankOut) {
  const int P = world().size(), r = world().rank();
  auto evens = world().split(r % 2 == 0 ? 0 : -1, r);
  if (r % 2 == 0) {
    EXPECT_NE(evens, nullptr);
    if (evens) {
      EXPECT_EQ(evens->size(), (P + 1) / 2);
      EXPECT_EQ(evens->rank(), r / 2);
      std::int64_t x = 1;
      SpaceBuffer<std::int64_t> one(std::vector<std::int64_t>{x});
      evens->all_reduce(one.data(), 1, ReduceOp::sum);
      EXPECT_EQ(one.download()[0], (P + 1) / 2);
    }
  } else {
    EXPECT_EQ(evens, nullptr);
  }
}

TEST(Counters, ChildCommunicatorsCountSeparately) {
  const int P = world().size(), r = world().rank();
  world().reset_counters();
  auto sub = world().split(0, r);
  EXPECT_NE(sub, nullptr);
  if (!sub) return;  // every rank got one (color 0), so every rank returns together
  SpaceBuffer<float> x(8, 1.0f), y(8 * P, 0.0f);
  sub->all_gather(x.data(), 8, y.data());
  EXPECT_EQ(sub->total_traffic().bytes_received, static_cast<std::uint64_t>(P - 1) * 8 * sizeof(float));
  EXPECT_EQ(world().total_traffic().bytes_sent, 0u) << "the child's traffic was booked on the parent";
}

TEST(Counters, ScopesNestAndRestoreLabels) {
  const int P = world().size(), r = world().rank();
  const int right = (r + 1) % P, left = (r - 1 + P) % P;
  SpaceBuffer<float> out(10, 1.0f), in(10, 0.0f);
  world().reset_counters();
  EXPECT_EQ(world().current_label(), labels::other);
  {
    auto outer = world().counter_scope("layer0.ring");
    world().sendrecv(out.data(), 10, right, in.data(), 10, left);
    {
      auto inner = world().counter_scope("layer0.halo");
      EXPECT_EQ(world().current_label(), "layer0.halo");
      world().sendrecv(out.data(), 3, right, in.data(), 3, left);
    }
    EXPECT_EQ(world().current_label(), "layer0.ring");
    world().sendrecv(out.data(), 5, right, in.data(), 5, left);
  }
  EXPECT_EQ(world().current_label(), labels::other);
  const std::uint64_t f = sizeof(float), remote = P > 1 ? 1 : 0;
  EXPECT_EQ(world().traffic("layer0.ring").bytes_sent, remote * 15 * f);
  EXPECT_EQ(world().traffic("layer0.ring").messages_sent, remote * 2);
  EXPECT_EQ(world().traffic("layer0.halo").bytes_sent, remote * 3 * f);
  EXPECT_EQ(world().traffic(labels::other).bytes_sent, 0u);
  EXPECT_EQ(world().total_traffic().bytes_received, remote * 18 * f);
  EXPECT_EQ(world().traffic("never.used").bytes_sent, 0u);
  world().reset_counters();
  EXPECT_EQ(world().total_traffic().bytes_sent, 0u);
  EXPECT_TRUE(world().traffic_by_label().empty());
}

}  // namespace
}  // namespace ringscan::comm::test
