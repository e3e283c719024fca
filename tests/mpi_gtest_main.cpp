// main() of the multi-rank GoogleTest executables (io store, sequence parallel,
// sharded decode): GoogleTest on every rank; rank 0 keeps the normal printer,
// other ranks print only their failures with a rank prefix. A fatal failure on
// any rank aborts every rank (the others would wait forever in the next
// collective); the exit status is non-zero on every rank when any rank failed.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>
#include <string>

#include "comm/mpi_io_choice.h"
#include "kernels/blas_runtime.h"

namespace {

class RankListener : public ::testing::EmptyTestEventListener {
 public:
  explicit RankListener(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (!r.failed()) return;
    if (rank_ != 0)
      std::fprintf(stderr, "[rank %d] FAILED at %s:%d\n%s\n", rank_, r.file_name() ? r.file_name() : "?",
                   r.line_number(), r.message());
    if (r.fatally_failed()) {
      std::fprintf(stderr, "ringscan: error: rank %d: test: fatal failure: aborting every rank\n", rank_);
      std::fflush(stderr);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
  }

 private:
  int rank_;
};

}  // namespace

int main(int argc, char** argv) {
  ringscan::reexec_with_fast_blas_if_needed(argv);
  ringscan::comm::prefer_romio_before_mpi_init();  // as ringscan does (comm/mpi_io_choice.h)
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  ::testing::InitGoogleTest(&argc, argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
  if (rank != 0) delete listeners.Release(listeners.default_result_printer());
  listeners.Append(new RankListener(rank));
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0, failed_ranks = 0;
  MPI_Allreduce(&failed, &failed_ranks, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0)
    std::printf("%d rank(s): %s\n", size,
                failed_ranks == 0 ? "passed on every rank" : (std::to_string(failed_ranks) + " rank(s) FAILED").c_str());
  MPI_Finalize();
  return failed_ranks == 0 ? 0 : 1;
}
