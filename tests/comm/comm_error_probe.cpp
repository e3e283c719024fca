// A tiny MPI program that fails on purpose, one way per mode, so that
// check_error_exit.cmake can verify the whole mpirun stops quickly with a
// non-zero status and one clear error line, instead of hanging.
//   abort_all      rank 1 (rank 0 when alone) finds "bad input"; the others wait in a barrier
//   size_mismatch  rank 0 sends 4 floats, rank 1 expects 8
//   truncate       rank 0 sends 8 floats, rank 1 expects 4
//   mpi_error      an MPI call with an invalid rank, reported through check_mpi
//   bad_order      the state scan is given an order that is not a permutation
//   exception      rank 1 throws out of the MpiSession's scope while others wait
//   nccl_crowded   (builds with NCCL) an NCCL communicator on a node with more
//                  ranks than GPUs (tools/cuda_emu/run.sh comm runs it with
//                  fewer emulated GPUs than ranks)
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "comm/mpi_communicator.h"
#include "comm/mpi_session.h"
#ifdef RINGSCAN_HAVE_NCCL
#include "comm/nccl_communicator.h"
#endif

using namespace ringscan::comm;

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "exception") {
    try {
      MpiSession mpi(&argc, &argv);
      auto comm = MpiCommunicator::create();
      if (comm->rank() == 1 % comm->size()) throw std::runtime_error("probe: unexpected failure");
      comm->barrier();
    } catch (const std::exception&) {
      return 1;  // not reached on a multi-rank run: the session aborts all ranks first
    }
    return 0;
  }

  MpiSession mpi(&argc, &argv);
  auto comm = MpiCommunicator::create();
  const int r = comm->rank(), P = comm->size();
  std::vector<float> buf(8, 1.0f);
  if (mode == "abort_all") {
    if (r == 1 % P) abort_all("probe: bad input in file /data/x.txt: expected UTF-8 text", 3);
    comm->barrier();
  } else if (mode == "size_mismatch" || mode == "truncate") {
    const std::size_t sent = mode == "size_mismatch" ? 4 : 8, expected = mode == "size_mismatch" ? 8 : 4;
    if (r == 0) comm->send(buf.data(), sent, 1 % P);
    if (r == 1 % P) comm->recv(buf.data(), expected, 0);
    comm->barrier();
  } else if (mode == "mpi_error") {
    if (r == 0) check_mpi(MPI_Send(buf.data(), 1, MPI_FLOAT, P + 5, 0, comm->mpi_comm()), "MPI_Send");
    comm->barrier();
  } else if (mode == "bad_order") {
    std::vector<float> a(1, 1.0f), S(2, 0.0f), H(2);
    StateScanArgs args;
    args.n_heads = 1;
    args.state_elems = 2;
    args.decay = a.data();
    args.state = S.data();
    args.prefix_state = H.data();
    comm->exclusive_state_scan(std::vector<int>(P, 0), args);
#ifdef RINGSCAN_HAVE_NCCL
  } else if (mode == "nccl_crowded") {
    auto nccl = NcclCommunicator::create(comm->mpi_comm());
    nccl->barrier();
#endif
  } else {
    std::fprintf(stderr, "comm_error_probe: unknown mode '%s'\n", mode.c_str());
    return 2;
  }
  std::printf("comm_error_probe: mode %s did not fail\n", mode.c_str());
  return 0;
}
