// main() of multi-rank model tests: GoogleTest on every rank, rank 0 prints,
// other ranks print only their failures; a fatal failure on any rank aborts
// all ranks (the others would wait forever in the next collective); the exit
// status is non-zero on every rank if any rank failed.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>

#include "comm/mpi_session.h"
#include "kernels/blas_runtime.h"

namespace {
class RankListener : public ::testing::EmptyTestEventListener {
 public:
  explicit RankListener(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (!r.failed()) return;
    if (rank_ != 0) std::fprintf(stderr, "[rank %d] %s:%d: %s\n", rank_, r.file_name() ? r.file_name() : "?", r.line_number(), r.message());
    if (r.fatally_failed()) ringscan::comm::abort_all(std::string("test: fatal failure: ") + r.summary(), 1);
  }

 private:
  int rank_;
};
}  // namespace

int main(int argc, char** argv) {
  ringscan::reexec_with_fast_blas_if_needed(argv);
  ringscan::comm::MpiSession mpi(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
  if (mpi.world_rank() != 0) delete listeners.Release(listeners.default_result_printer());
  listeners.Append(new RankListener(mpi.world_rank()));
  int failed = RUN_ALL_TESTS() != 0, any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return any;
}
