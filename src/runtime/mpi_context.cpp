#include "runtime/mpi_context.h"

#include <cstdint>
#include <limits>

namespace ringscan {

namespace {
std::unique_ptr<comm::MpiSession>& session() {
  static std::unique_ptr<comm::MpiSession> s;
  return s;
}
}  // namespace

comm::MpiSession& start_mpi(int* argc, char*** argv) {
  if (!session()) session() = std::make_unique<comm::MpiSession>(argc, argv);
  return *session();
}

void stop_mpi() { session().reset(); }

int mpi_world_size() { return session() ? session()->world_size() : 1; }

void check_sp_option(int sp, int ranks) {
  if (sp < 0) throw Error("--sp " + std::to_string(sp) + " must be >= 0 (0: the scheduler decides)");
  if (sp > ranks)
    throw Error("--sp " + std::to_string(sp) + " needs " + std::to_string(sp) + " ranks but this run has " +
                std::to_string(ranks) + ": start it with mpirun -np " + std::to_string(sp) + " ringscan ... (or srun -n " +
                std::to_string(sp) + " under Slurm)");
}

void check_collectively(comm::Communicator& comm, const std::function<void()>& fn) {
  std::string message;
  try {
    fn();
  } catch (const std::exception& e) {  // ringscan::Error, or a bad option
    message = e.what();
  }
  std::int64_t first = message.empty() ? std::numeric_limits<std::int64_t>::max() : comm.rank();
  // Max of negated ranks = the lowest failing rank.
  std::int64_t neg = -first;
  comm.all_reduce(&neg, 1, comm::ReduceOp::max);
  first = -neg;
  if (first == std::numeric_limits<std::int64_t>::max()) return;
  if (first == comm.rank()) throw CollectiveError(message);
  throw ReportedElsewhere();
}

}  // namespace ringscan
