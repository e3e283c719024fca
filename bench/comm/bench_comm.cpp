// Times the collectives sequence parallelism needs, at the sizes of the
// Nemotron 3 Nano 4B model, over the MPI backend (host buffers):
//   state scan  one Mamba-2 layer's states: 96 heads x (80 x 128) fp32 = 3.75 MiB per rank
//   ring pass   one attention layer's K/V: 8 KV heads x 128 x 2 (K, V) x bf16 = 4 KiB per token
// Prints, per operation, the slowest rank's median time, this rank-0's bytes
// sent (against the formula), and rank 0's share of ring-pass time spent in wait().
//   mpirun -np 4 bench_comm [--tokens-per-rank 4096] [--reps 5]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "comm/mpi_communicator.h"
#include "comm/mpi_session.h"
#include "comm/state_scan_schedule.h"

using namespace ringscan::comm;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double slowest_median(Communicator& c, std::vector<double> t) {
  std::sort(t.begin(), t.end());
  float med = static_cast<float>(t[t.size() / 2]);
  c.all_reduce(&med, 1, ReduceOp::max);
  return med;
}

}  // namespace

int main(int argc, char** argv) {
  MpiSession mpi(&argc, &argv);
  auto world = MpiCommunicator::create();
  long tokens = 4096, reps = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--tokens-per-rank")) tokens = std::atol(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--reps")) reps = std::atol(argv[i + 1]);
    else abort_all(std::string("bench_comm: unknown option ") + argv[i]);
  }
  const int P = world->size(), r = world->rank();
  if (r == 0) std::printf("bench_comm: %d ranks, MPI backend, %ld reps\n", P, reps);

  // State scan at the 4B model's size.
  const int nh = 96;
  const std::size_t se = 80 * 128;
  std::vector<float> a(nh, 0.9f), S(nh * se, 0.5f), H(nh * se), D(nh);
  StateScanArgs args;
  args.n_heads = nh;
  args.state_elems = se;
  args.decay = a.data();
  args.state = S.data();
  args.prefix_state = H.data();
  args.prefix_decay = D.data();
  std::vector<double> t;
  world->reset_counters();
  for (long i = 0; i < reps; ++i) {
    world->barrier();
    const double t0 = now();
    {
      auto scope = world->counter_scope(labels::state);
      world->exclusive_state_scan(args);
    }
    t.push_back(now() - t0);
  }
  const double scan_s = slowest_median(*world, t);
  std::uint64_t msgs = 0;
  for (int k = 0; k < scan_schedule::rounds(P); ++k) msgs += scan_schedule::sends(r, k, P);
  const std::uint64_t expect = msgs * nh * (1 + se) * sizeof(float) * reps;
  const auto st = world->traffic(labels::state);
  if (r == 0)
    std::printf("state scan   %8.3f ms  rank0 sent %.2f MiB/scan (formula %.2f)  rounds %d\n", scan_s * 1e3,
                st.bytes_sent / reps / 1048576.0, expect / reps / 1048576.0, scan_schedule::rounds(P));

  // Ring pass of K/V blocks, overlapped with a stand-in for the block compute.
  const std::size_t block = static_cast<std::size_t>(tokens) * 4096;
  std::vector<unsigned char> cur(block, 1), next(block);
  t.clear();
  world->reset_counters();
  double work_sink = 0;
  for (long i = 0; i < reps; ++i) {
    world->barrier();
    const double t0 = now();
    auto scope = world->counter_scope(labels::ring);
    for (int step = 0; step < P - 1; ++step) {
      Request q = world->isendrecv(cur.data(), block, (r + 1) % P, next.data(), block, (r - 1 + P) % P);
      for (std::size_t j = 0; j < block; j += 64) work_sink += cur[j];
      q.wait();
      std::swap(cur, next);
    }
    t.push_back(now() - t0);
  }
  double ring_total = 0;  // this rank's own time, for its wait share
  for (double x : t) ring_total += x;
  const double ring_s = slowest_median(*world, t);
  const auto rt = world->traffic(labels::ring);
  if (r == 0)
    std::printf("ring pass    %8.3f ms  rank0 sent %.2f MiB/pass (formula %.2f)  %.2f GB/s per rank  waiting %.0f%%\n",
                ring_s * 1e3, rt.bytes_sent / reps / 1048576.0, (P - 1) * block / 1048576.0,
                ring_s > 0 ? (P - 1) * block / ring_s / 1e9 : 0.0,
                100.0 * rt.wait_seconds / std::max(1e-12, ring_total));
  if (work_sink < 0) std::printf("%f\n", work_sink);
  return 0;
}
