// Point-to-point transfers: the ring pass of ring attention, the halo
// exchange, pairs, non-blocking requests, and their traffic counts. Values
// are small integers in floats, so every comparison is exact.
#include <cstdint>
#include <vector>

#include "comm/mpi_communicator.h"
#include "comm_test_env.h"

namespace ringscan::comm::test {
namespace {

float value_of(int owner, std::size_t i) { return static_cast<float>(owner * 100000 + static_cast<int>(i)); }

std::vector<float> block_of(int owner, std::size_t n) {
  std::vector<float> b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = value_of(owner, i);
  return b;
}

// Ring attention's K/V pass: P-1 steps of (post sendrecv to r+1 / from r-1,
// compute on the current block, wait); every block visits every rank.
void ring_pass(std::size_t n) {
  const int P = world().size(), r = world().rank();
  const int right = (r + 1) % P, left = (r - 1 + P) % P;
  SpaceBuffer<float> cur(block_of(r, n)), next(n, -1.0f);
  std::vector<int> seen(P, 0);
  seen[r] = 1;
  double overlapped_work = 0;
  for (int step = 0; step < P - 1; ++step) {
    Request req = world().isendrecv(cur.data(), n, right, next.data(), n, left);
    // "Compute" on the block we hold while the transfer is in flight.
    for (float x : cur.download()) overlapped_work += x;
    req.wait();
    EXPECT_FALSE(req.pending());
    const auto& got = next.download();
    const int owner = (r - step - 1 + 2 * P) % P;
    EXPECT_EQ(got, block_of(owner, n)) << "step " << step << " on rank " << r;
    if (owner >= 0 && owner < P) seen[owner] += 1;
    std::swap(cur.host, next.host);
    cur.upload();
  }
  for (int q = 0; q < P; ++q) EXPECT_EQ(seen[q], 1) << "block of rank " << q << " on rank " << r;
  EXPECT_GE(overlapped_work, 0.0);
}

TEST(RingPass, EveryBlockReachesEveryRankOnce) {
  const int P = world().size();
  const std::size_t n = 1000;
  world().reset_counters();
  {
    auto scope = world().counter_scope(labels::ring);
    ring_pass(n);
  }
  const Traffic t = world().traffic(labels::ring);
  // P-1 steps, one block each way per step (nothing is counted when P == 1).
  EXPECT_EQ(t.messages_sent, static_cast<std::uint64_t>(P - 1));
  EXPECT_EQ(t.bytes_sent, static_cast<std::uint64_t>(P - 1) * n * sizeof(float));
  EXPECT_EQ(t.messages_received, static_cast<std::uint64_t>(P - 1));
  EXPECT_EQ(t.bytes_received, static_cast<std::uint64_t>(P - 1) * n * sizeof(float));
  EXPECT_GE(t.wait_seconds, 0.0);
  EXPECT_EQ(world().traffic(labels::other).bytes_sent, 0u) << "ring bytes leaked out of their scope";
}

TEST(RingPass, TestPollsUntilComplete) {
  const int P = world().size(), r = world().rank();
  const std::size_t n = 64;
  SpaceBuffer<float> out(block_of(r, n)), in(n, -1.0f);
  Request req = world().isendrecv(out.data(), n, (r + 1) % P, in.data(), n, (r - 1 + P) % P);
  long polls = 0;
  while (!req.test()) ++polls;
  EXPECT_FALSE(req.pending());
  EXPECT_EQ(in.download(), block_of((r - 1 + P) % P, n)) << "after " << polls << " polls";
}

TEST(Request, DestructionAndMoveAssignmentWait) {
  const int P = world().size(), r = world().rank();
  const std::size_t n = 32;
  SpaceBuffer<float> out(block_of(r, n)), in1(n, -1.0f), in2(n, -1.0f);
  {
    Request req = world().isendrecv(out.data(), n, (r + 1) % P, in1.data(), n, (r - 1 + P) % P);
    Request moved = std::move(req);
    EXPECT_FALSE(req.pending());
  }  // `moved` waits here
  EXPECT_EQ(in1.download(), block_of((r - 1 + P) % P, n));
  Request a = world().isendrecv(out.data(), n, (r + 1) % P, in1.data(), n, (r - 1 + P) % P);
  a = world().isendrecv(out.data(), n, (r + 1) % P, in2.data(), n, (r - 1 + P) % P);  // waits for the first
  a.wait();
  EXPECT_EQ(in2.download(), block_of((r - 1 + P) % P, n));
  std::vector<Request> many;
  if (is_nccl()) {  // a send and its ring's receive in separate NCCL groups may hang: one group
    many.push_back(world().post_transfers({{true, out.data(), nullptr, n * sizeof(float), (r + 1) % P},
                                           {false, nullptr, in1.data(), n * sizeof(float), (r - 1 + P) % P}}));
  } else {
    many.push_back(world().isend(out.data(), n, (r + 1) % P));
    many.push_back(world().irecv(in1.data(), n, (r - 1 + P) % P));
  }
  wait_all(many);
  EXPECT_EQ(in1.download(), block_of((r - 1 + P) % P, n));
  for (auto& q : many) EXPECT_FALSE(q.pending());
}

// The conv halo: every rank sends its last k rows to the next rank and
// receives the previous rank's; the ends use no_peer.
TEST(Halo, SendrecvWithNoPeerAtTheEnds) {
  const int P = world().size(), r = world().rank();
  const std::size_t rows = 3, width = 17, n = rows * width;
  SpaceBuffer<float> tail(block_of(r, n)), halo(n, -1.0f);
  world().reset_counters();
  {
    auto scope = world().counter_scope("layer3.halo");
    world().sendrecv(tail.data(), n, r + 1 < P ? r + 1 : Communicator::no_peer, halo.data(), n,
                     r > 0 ? r - 1 : Communicator::no_peer);
  }
  if (r > 0)
    EXPECT_EQ(halo.download(), block_of(r - 1, n));
  else
    EXPECT_EQ(halo.download(), std::vector<float>(n, -1.0f)) << "rank 0 has no previous segment";
  const Traffic t = world().traffic("layer3.halo");
  EXPECT_EQ(t.bytes_sent, r + 1 < P ? n * sizeof(float) : 0u);
  EXPECT_EQ(t.bytes_received, r > 0 ? n * sizeof(float) : 0u);
}

// Even ranks send to the next odd rank, which answers; an odd P leaves the last rank out.
TEST(PointToPoint, BlockingPairsAndSizesInBytes) {
  const int P = world().size(), r = world().rank();
  const std::size_t n = 257;
  const bool paired = (r % 2 == 0) ? r + 1 < P : true;
  std::vector<std::int64_t> ids(n);
  for (std::size_t i = 0; i < n; ++i) ids[i] = (std::int64_t{1} << 40) + r * 1000 + static_cast<std::int64_t>(i);
  SpaceBuffer<std::int64_t> mine(ids), theirs(n, -1);
  world().reset_counters();
  if (paired) {
    if (r % 2 == 0) {
      world().send(mine.data(), n, r + 1);
      world().recv(theirs.data(), n, r + 1);
    } else {
      world().recv(theirs.data(), n, r - 1);
      world().send(mine.data(), n, r - 1);
    }
    const int peer = r % 2 == 0 ? r + 1 : r - 1;
    std::vector<std::int64_t> expect(n);
    for (std::size_t i = 0; i < n; ++i) expect[i] = (std::int64_t{1} << 40) + peer * 1000 + static_cast<std::int64_t>(i);
    EXPECT_EQ(theirs.download(), expect);
  }
  const Traffic t = world().traffic(labels::other);
  EXPECT_EQ(t.bytes_sent, paired ? n * sizeof(std::int64_t) : 0u);
  EXPECT_EQ(t.bytes_received, paired ? n * sizeof(std::int64_t) : 0u);
  EXPECT_EQ(t.messages_sent, paired ? 1u : 0u);
}

TEST(PointToPoint, MessagesToSelfArriveAndAreNotCounted) {
  const int r = world().rank();
  SpaceBuffer<float> out(block_of(r, 10)), in(10, 0.0f);
  world().reset_counters();
  world().sendrecv(out.data(), 10, r, in.data(), 10, r);
  EXPECT_EQ(in.download(), block_of(r, 10));
  EXPECT_EQ(world().total_traffic().bytes_sent, 0u);
  EXPECT_EQ(world().total_traffic().messages_received, 0u);
}

// Messages to self posted in separate calls pair in posting order, whichever
// side comes first, and a send buffer may be reused once its request is done
// (NCCL itself only pairs a send to self with a receive in the same group:
// the P = 1 failure of comm_nccl_np1).
TEST(PointToPoint, SelfMessagesInSeparateCallsPairInOrder) {
  const int r = world().rank();
  SpaceBuffer<float> x(block_of(r, 6)), y(block_of(r + 100, 9)), a(6, 0.0f), b(9, 0.0f);
  {
    Request ra = world().irecv(a.data(), 6, r);  // receives first
    Request rb = world().irecv(b.data(), 9, r);
    Request sx = world().isend(x.data(), 6, r);
    Request sy = world().isend(y.data(), 9, r);
    ra.wait(), rb.wait(), sx.wait(), sy.wait();
  }
  EXPECT_EQ(a.download(), block_of(r, 6));
  EXPECT_EQ(b.download(), block_of(r + 100, 9));
  // Sends first, each finished before its receive is posted: the NCCL backend's messages to
  // self (paired device copies) promise this. MPI does not (a send to self may wait for its
  // receive: MPICH's does, Open MPI buffers small ones), and the product posts receives
  // first (comm/mpi_communicator.cpp).
  if (!is_nccl()) return;
  SpaceBuffer<float> c(6, 0.0f), d(9, 0.0f);
  {
    Request sx = world().isend(x.data(), 6, r);  // sends first; x is overwritten before the receive
    sx.wait();
    x.host.assign(6, -1.0f);
    x.upload();
    world().send(y.data(), 9, r);
    world().recv(c.data(), 6, r);
    world().recv(d.data(), 9, r);
  }
  EXPECT_EQ(c.download(), block_of(r, 6));
  EXPECT_EQ(d.download(), block_of(r + 100, 9));
}

// Transfers above the MPI message limit are split; shrink the limit to see
// the ring pass and the scan survive splitting into odd-sized pieces.
TEST(PointToPoint, SplitMessagesReassembleInOrder) {
  if (is_nccl()) GTEST_SKIP() << "message splitting is an MPI-backend detail";
  MpiCommunicator::set_max_message_bytes(7);
  ring_pass(101);
  const int P = world().size(), r = world().rank();
  std::vector<float> all(P * 13);
  SpaceBuffer<float> gathered(P * 13, -1.0f), mine(block_of(r, 13));
  world().all_gather(mine.data(), 13, gathered.data());
  for (int q = 0; q < P; ++q)
    for (std::size_t i = 0; i < 13; ++i) all[q * 13 + i] = value_of(q, i);
  EXPECT_EQ(gathered.download(), all);
  MpiCommunicator::set_max_message_bytes(std::size_t{1} << 30);
}

}  // namespace
}  // namespace ringscan::comm::test
