// main() of the multi-rank communicator tests. GoogleTest runs on every rank:
// only rank 0 keeps the full printer; other ranks print their failures with
// a rank prefix. A fatal failure (ASSERT_*, exception) on any rank aborts
// every rank at once (it would otherwise leave the others blocked in the
// next collective); EXPECT_* failures are collected and the exit status is
// non-zero on every rank if any rank failed.
#include <mpi.h>

#include <cstdio>
#include <memory>
#include <string>

#include "comm/mpi_communicator.h"
#include "comm/mpi_session.h"
#include "comm_test_env.h"
#ifdef RINGSCAN_COMM_TEST_NCCL
#include <cuda_runtime_api.h>

#include "comm/nccl_communicator.h"
#endif

namespace ringscan::comm::test {

namespace {
std::unique_ptr<Communicator> g_world;
}

Communicator& world() { return *g_world; }

bool is_nccl() { return g_world->backend_name() == "nccl"; }

long long world_sum(long long x) {
  long long s = 0;
  check_mpi(MPI_Allreduce(&x, &s, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
  return s;
}

std::vector<long long> world_gather(long long x) {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  std::vector<long long> all(size);
  check_mpi(MPI_Allgather(&x, 1, MPI_LONG_LONG, all.data(), 1, MPI_LONG_LONG, MPI_COMM_WORLD), "MPI_Allgather");
  return all;
}

}  // namespace ringscan::comm::test

namespace {

class RankListener : public ::testing::EmptyTestEventListener {
 public:
  explicit RankListener(int rank) : rank_(rank) {}
  // The test's name is kept here: UnitTest::current_test_info() takes a lock
  // that GoogleTest already holds while reporting a result (it would deadlock).
  void OnTestStart(const ::testing::TestInfo& info) override {
    test_ = std::string(info.test_suite_name()) + "." + info.name();
  }
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (!r.failed()) return;
    const std::string where =
        test_ + " at " + (r.file_name() ? r.file_name() : "?") + ":" + std::to_string(r.line_number());
    if (rank_ != 0) std::fprintf(stderr, "[rank %d] FAILED %s\n%s\n", rank_, where.c_str(), r.message());
    if (r.fatally_failed())
      ringscan::comm::abort_all("comm test: fatal failure in " + where + ": " + r.summary(), 1);
  }

 private:
  int rank_;
  std::string test_ = "(outside a test)";
};

}  // namespace

int main(int argc, char** argv) {
  ringscan::comm::MpiSession mpi(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  const int rank = mpi.world_rank();
  auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
  if (rank != 0) delete listeners.Release(listeners.default_result_printer());
  listeners.Append(new RankListener(rank));

#ifdef RINGSCAN_COMM_TEST_NCCL
  // NCCL needs one GPU per rank on a node: without them these tests cannot run
  // here, and say so (exit 77 = skipped for ctest) instead of passing.
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess) devices = 0;
  int need = ringscan::comm::local_rank() + 1;
  MPI_Allreduce(MPI_IN_PLACE, &need, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (devices < need) {
    if (rank == 0)
      std::printf("NCCL communicator tests SKIPPED: %d CUDA device(s) visible, %d rank(s) per node need one each\n",
                  devices, need);
    return 77;
  }
  ringscan::comm::test::g_world = ringscan::comm::NcclCommunicator::create(MPI_COMM_WORLD);
#else
  ringscan::comm::test::g_world = ringscan::comm::MpiCommunicator::create(MPI_COMM_WORLD);
#endif

  const int rc = RUN_ALL_TESTS();
  const long long failed_ranks = ringscan::comm::test::world_sum(rc != 0 ? 1 : 0);
  ringscan::comm::test::g_world.reset();
  if (rank == 0)
    std::printf("comm tests (%s build, %d ranks): %s\n",
#ifdef RINGSCAN_COMM_TEST_NCCL
                "nccl",
#else
                "mpi",
#endif
                mpi.world_size(),
                failed_ranks == 0 ? "passed on every rank" : (std::to_string(failed_ranks) + " rank(s) FAILED").c_str());
  return failed_ranks == 0 ? 0 : 1;
}
