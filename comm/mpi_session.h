// Process-wide MPI helpers for the whole program: MPI lifetime, stopping every
// rank on an error, and the node-local rank (for picking a GPU).
//
// Recommended main():
//   int main(int argc, char** argv) {
//     ringscan::comm::MpiSession mpi(&argc, &argv);
//     try { return run(argc, argv); }
//     catch (const std::exception& e) { ringscan::comm::abort_all(e.what(), 1); }
//   }
// A rank that fails must abort the others: returning alone would leave them
// blocked forever in their next collective.
#pragma once

#include <mpi.h>

#include <string>

namespace ringscan::comm {

// MPI_Init_thread(MPI_THREAD_FUNNELED) and MPI_Finalize. MPI_COMM_WORLD gets
// MPI_ERRORS_RETURN so failures come back as codes that check_mpi reports.
// If MPI is already initialised, the session neither initialises nor
// finalises it. If the session ends while an exception is in flight on a
// multi-rank run, it aborts all ranks instead of finalising (which would hang).
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  int world_rank() const;
  int world_size() const;

 private:
  bool owns_ = false;
};

// Prints "ringscan: error: <message>" once on this rank (as "ringscan: error:
// rank R: <message>" when the world has more than one rank) and stops every
// rank with MPI_Abort(code). Without MPI (not initialised, or finalised) it
// prints and exits. code 0 is turned into 1.
[[noreturn]] void abort_all(const std::string& message, int code = 1);

// abort_all for system failures: names rank and host, "rank R on HOST: <what>".
[[noreturn]] void fail_here(const std::string& what, int code = 1);

// Aborts all ranks with "rank R on HOST: <call> failed: <MPI_Error_string>" unless rc is MPI_SUCCESS.
void check_mpi(int rc, const char* call);

// MPI_Get_processor_name (gethostname when MPI is not running).
std::string host_name();

// This process's rank among the ranks on its node, for choosing a GPU:
// MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED), which is
// collective over MPI_COMM_WORLD, so every rank must call local_rank()
// together the first time (the result is cached). Without MPI running, the
// launcher's variable (OMPI_COMM_WORLD_LOCAL_RANK, MPI_LOCALRANKID,
// SLURM_LOCALID) or 0.
int local_rank();

// How many ranks of MPI_COMM_WORLD share this node's memory. Collective over
// MPI_COMM_WORLD (every rank must call it together).
int ranks_on_this_node();

}  // namespace ringscan::comm
