// MPI for the commands and jobs that run on several ranks, and how their errors
// end a run: an error found by every rank at the same point (bad option, missing
// model) is reported once by the lowest failing rank and every rank exits 1;
// an error on one rank in the middle of a computation aborts all ranks
// (comm::abort_all) so that no rank hangs waiting for it.
#pragma once
#include <functional>
#include <memory>

#include "comm/mpi_communicator.h"
#include "comm/mpi_session.h"
#include "util/error.h"

namespace ringscan {

// Starts MPI once (idempotent); the program's main() finalizes it with stop_mpi().
comm::MpiSession& start_mpi(int* argc, char*** argv);
void stop_mpi();
int mpi_world_size();  // 1 when MPI was not started

// Throws Error when --sp N cannot run on `ranks` ranks: N below 0, or more ranks than
// the run has (the sentence says how to start N: mpirun -np N).
void check_sp_option(int sp, int ranks);

// Thrown on the rank that reports a collectively agreed failure.
class CollectiveError : public Error {
 public:
  using Error::Error;
};
// Thrown on the other ranks of such a failure: exit 1 without a message.
class ReportedElsewhere : public std::exception {};

// Runs fn on every rank of comm; if it throws Error on any rank, the lowest
// failing rank throws CollectiveError with its message and the others throw
// ReportedElsewhere. Every rank must call this at the same point.
void check_collectively(comm::Communicator& comm, const std::function<void()>& fn);

}  // namespace ringscan
