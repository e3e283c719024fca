// All-gather (equal and variable sizes), all-reduce, broadcast, barrier:
// results against values every rank can compute, and bytes against the
// algorithm's formulas (comm/mpi_communicator.h; NCCL books nominal ring
// bytes, comm/nccl_communicator.h).
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "comm_test_env.h"

namespace ringscan::comm::test {
namespace {

float value_of(int owner, std::size_t i) { return static_cast<float>(owner * 10000 + static_cast<int>(i)); }

std::uint64_t expected_gather_sent(const std::vector<std::size_t>& bytes, int r) {
  const int P = static_cast<int>(bytes.size());
  std::uint64_t total = 0;
  for (auto b : bytes) total += b;
  if (is_nccl()) return static_cast<std::uint64_t>(P - 1) * bytes[r];  // ring (equal) or direct sends (variable)
  return total - bytes[(r + 1) % P];  // ring: every block but the right neighbour's passes through r
}

std::uint64_t expected_gather_received(const std::vector<std::size_t>& bytes, int r) {
  std::uint64_t total = 0;
  for (auto b : bytes) total += b;
  return total - bytes[r];
}

TEST(AllGather, EqualBlocksInRankOrder) {
  const int P = world().size(), r = world().rank();
  const std::size_t n = 37;
  std::vector<float> mine(n), expect(P * n);
  for (std::size_t i = 0; i < n; ++i) mine[i] = value_of(r, i);
  for (int q = 0; q < P; ++q)
    for (std::size_t i = 0; i < n; ++i) expect[q * n + i] = value_of(q, i);
  SpaceBuffer<float> send(mine), recv(P * n, -1.0f);
  world().reset_counters();
  world().all_gather(send.data(), n, recv.data());
  EXPECT_EQ(recv.download(), expect);
  const std::vector<std::size_t> bytes(P, n * sizeof(float));
  const Traffic t = world().total_traffic();
  EXPECT_EQ(t.bytes_sent, expected_gather_sent(bytes, r));
  EXPECT_EQ(t.bytes_received, expected_gather_received(bytes, r));
  EXPECT_EQ(t.messages_sent, static_cast<std::uint64_t>(P - 1));
}

TEST(AllGather, InPlace) {
  const int P = world().size(), r = world().rank();
  const std::size_t n = 5;
  std::vector<float> init(P * n, -1.0f), expect(P * n);
  for (int q = 0; q < P; ++q)
    for (std::size_t i = 0; i < n; ++i) expect[q * n + i] = value_of(q, i);
  for (std::size_t i = 0; i < n; ++i) init[r * n + i] = value_of(r, i);
  SpaceBuffer<float> buf(init);
  world().all_gather(buf.data() + r * n, n, buf.data());
  EXPECT_EQ(buf.download(), expect);
}

TEST(AllGather, VariableSizesIncludingEmptyBlocks) {
  const int P = world().size(), r = world().rank();
  std::vector<std::size_t> counts(P);
  for (int q = 0; q < P; ++q) counts[q] = static_cast<std::size_t>((q * 7 + 3) % 5);  // 3, 0, 2, 4, 1, 3, ...
  EXPECT_EQ(world().all_gather_counts(counts[r]), counts);
  std::vector<float> mine(counts[r]), expect;
  for (std::size_t i = 0; i < counts[r]; ++i) mine[i] = value_of(r, i);
  for (int q = 0; q < P; ++q)
    for (std::size_t i = 0; i < counts[q]; ++i) expect.push_back(value_of(q, i));
  SpaceBuffer<float> send(mine), recv(expect.size(), -1.0f);
  world().reset_counters();
  world().all_gather_v(send.data(), recv.data(), counts);
  EXPECT_EQ(recv.download(), expect);
  std::vector<std::size_t> bytes(counts);
  for (auto& b : bytes) b *= sizeof(float);
  const Traffic t = world().total_traffic();
  EXPECT_EQ(t.bytes_sent, expected_gather_sent(bytes, r));
  EXPECT_EQ(t.bytes_received, expected_gather_received(bytes, r));
  EXPECT_EQ(world_sum(static_cast<long long>(t.bytes_sent)), world_sum(static_cast<long long>(t.bytes_received)));
}

// Bytes this rank sends in the all-reduce (see comm/mpi_communicator.h).
std::uint64_t expected_reduce_sent(int P, int r, std::uint64_t n) {
  if (is_nccl()) return 2 * static_cast<std::uint64_t>(P - 1) * n / P;  // nominal ring
  int p2 = 1, L = 0;
  while (p2 * 2 <= P) p2 *= 2, ++L;
  const int rem = P - p2;
  if (r < 2 * rem) return r % 2 == 0 ? n : (L + 1) * n;
  return L * n;
}

std::uint64_t fnv1a(const void* p, std::size_t bytes) {
  std::uint64_t h = 1469598103934665603ULL;
  for (std::size_t i = 0; i < bytes; ++i) h = (h ^ static_cast<const unsigned char*>(p)[i]) * 1099511628211ULL;
  return h;
}

std::vector<float> random_floats(int owner, std::size_t n) {
  std::mt19937 rng(1234 + owner);
  std::uniform_real_distribution<float> d(-10.0f, 10.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

TEST(AllReduce, FloatSumIsAccurateAndIdenticalOnEveryRank) {
  const int P = world().size(), r = world().rank();
  const std::size_t n = 1001;
  SpaceBuffer<float> buf(random_floats(r, n));
  world().reset_counters();
  world().all_reduce(buf.data(), n, ReduceOp::sum);
  const auto& got = buf.download();
  // Any summation order of P floats is within (P-1)*u*sum|x| of the exact sum; allow P*FLT_EPSILON.
  std::vector<std::vector<float>> inputs;
  for (int q = 0; q < P; ++q) inputs.push_back(random_floats(q, n));
  std::size_t bad = 0;
  for (std::size_t i = 0; i < n; ++i) {
    double exact = 0, mag = 0;
    for (int q = 0; q < P; ++q) {
      const float x = inputs[q][i];
      exact += x;
      mag += std::fabs(x);
    }
    if (!(std::fabs(got[i] - exact) <= P * FLT_EPSILON * mag)) ++bad;
  }
  EXPECT_EQ(bad, 0u);
  const auto hashes = world_gather(static_cast<long long>(fnv1a(got.data(), n * sizeof(float))));
  if (!is_nccl()) {  // our recursive doubling guarantees it; NCCL documents no such thing
    for (int q = 0; q < P; ++q) {
      EXPECT_EQ(hashes[q], hashes[0]) << "rank " << q << " holds different bits";
    }
  }
  const Traffic t = world().total_traffic();
  EXPECT_EQ(t.bytes_sent, expected_reduce_sent(P, r, n * sizeof(float)));
  EXPECT_EQ(world_sum(static_cast<long long>(t.bytes_sent)), world_sum(static_cast<long long>(t.bytes_received)));
}

TEST(AllReduce, FloatMaxIsExact) {
  const int P = world().size(), r = world().rank();
  const std::size_t n = 300;
  SpaceBuffer<float> buf(random_floats(r, n));
  world().all_reduce(buf.data(), n, ReduceOp::max);
  std::vector<float> expect(n, -INFINITY);
  for (int q = 0; q < P; ++q) {
    const auto v = random_floats(q, n);
    for (std::size_t i = 0; i < n; ++i) expect[i] = std::max(expect[i], v[i]);
  }
  EXPECT_EQ(buf.download(), expect);
}

TEST(AllReduce, Int64SumAndMaxAreExact) {
  const int P = world().size(), r = world().rank();
  const std::size_t n = 17;
  std::vector<std::int64_t> mine(n), sum(n, 0), mx(n, INT64_MIN);
  auto v = [](int q, std::size_t i) -> std::int64_t {
    return (std::int64_t{1} << 50) + q * 1000003LL * (i % 2 ? 1 : -1) + static_cast<std::int64_t>(i);
  };
  for (std::size_t i = 0; i < n; ++i) mine[i] = v(r, i);
  for (int q = 0; q < P; ++q)
    for (std::size_t i = 0; i < n; ++i) sum[i] += v(q, i), mx[i] = std::max(mx[i], v(q, i));
  SpaceBuffer<std::int64_t> a(mine), b(mine);
  world().all_reduce(a.data(), n, ReduceOp::sum);
  world().all_reduce(b.data(), n, ReduceOp::max);
  EXPECT_EQ(a.download(), sum);
  EXPECT_EQ(b.download(), mx);
}

// Bytes sent by the binomial tree (MPI) or the pipeline chain (NCCL, nominal).
std::uint64_t expected_broadcast_sent(int P, int r, int root, std::uint64_t n) {
  if (is_nccl()) return (P > 1 && r != (root - 1 + P) % P) ? n : 0;
  const int v = (r - root + P) % P;
  const int lowbit = v == 0 ? (1 << 30) : (v & -v);
  std::uint64_t sent = 0;
  for (int m = 1; m < P; m <<= 1)
    if (m < lowbit && v + m < P) sent += n;
  return sent;
}

TEST(Broadcast, FromEveryRoot) {
  const int P = world().size(), r = world().rank();
  const std::size_t n = 123;
  long long total_sent = 0;
  for (int root = 0; root < P; ++root) {
    std::vector<float> init(n, -1.0f), expect(n);
    for (std::size_t i = 0; i < n; ++i) expect[i] = value_of(root, i);
    SpaceBuffer<float> buf(r == root ? expect : init);
    world().reset_counters();
    world().broadcast(buf.data(), n, root);
    EXPECT_EQ(buf.download(), expect) << "root " << root;
    const Traffic t = world().total_traffic();
    EXPECT_EQ(t.bytes_sent, expected_broadcast_sent(P, r, root, n * sizeof(float))) << "root " << root;
    EXPECT_EQ(t.bytes_received, r == root ? 0u : n * sizeof(float)) << "root " << root;
    total_sent += static_cast<long long>(t.bytes_sent);
  }
  // Every non-root receives the buffer exactly once.
  EXPECT_EQ(world_sum(total_sent), static_cast<long long>(P) * (P - 1) * static_cast<long long>(n * sizeof(float)));
}

TEST(Barrier, BooksTimeButNoBytes) {
  world().reset_counters();
  world().barrier();
  const Traffic t = world().total_traffic();
  EXPECT_EQ(t.bytes_sent, 0u);
  EXPECT_EQ(t.messages_sent, 0u);
  EXPECT_GT(t.wait_seconds, 0.0);
}

}  // namespace
}  // namespace ringscan::comm::test
