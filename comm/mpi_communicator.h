// Communicator over MPI for host (CPU) buffers. Point-to-point messages use
// MPI_Isend/MPI_Irecv of bytes (split into 1 GiB messages: MPI counts are
// int; each split transfer still counts as one message in Traffic); the collectives are written here from point-to-point so the traffic
// counters book exactly what this rank handed to MPI:
//
//   all_gather(_v): ring, P-1 steps. Rank r sends blocks r, r-1, ..., r-P+2
//       to r+1: bytes_sent = total - block[(r+1)%P], bytes_received =
//       total - block[r], P-1 messages each way.
//   all_reduce: recursive doubling (MPICH's scheme for any P): with p2 the
//       largest power of two <= P and rem = P - p2, ranks r < 2*rem fold in
//       pairs first (even r sends its n bytes to r+1), the p2 survivors run
//       log2(p2) exchange rounds of n bytes, then odd r < 2*rem send the
//       result back to r-1. Each pair combines (lower, higher) in that order
//       on both sides, so every rank ends with bitwise identical values.
//   broadcast: binomial tree; relative rank v = (r - root) mod P receives
//       n bytes once (v > 0) and sends n bytes to v + 2^k for every 2^k below
//       the lowest set bit of v (all 2^k < P for the root) with v + 2^k < P.
//   exclusive_state_scan: see comm/state_scan_schedule.h; each message is
//       n_heads*(1+state_elems)*4 bytes.
//   barrier: MPI_Barrier, no bytes booked.
#pragma once

#include <mpi.h>

#include <memory>
#include <vector>

#include "comm/communicator.h"
#include "comm/mpi_session.h"

namespace ringscan::comm {

class MpiCommunicator final : public Communicator {
 public:
  // Collective over `parent`: works on a duplicate, so its messages never mix
  // with other users of `parent` (e.g. parallel HDF5 on MPI_COMM_WORLD).
  static std::unique_ptr<MpiCommunicator> create(MPI_Comm parent = MPI_COMM_WORLD);
  ~MpiCommunicator() override;

  // Largest single MPI message (default and maximum 2^30 bytes); bigger transfers
  // are split. Process-wide; every rank must use the same value. Tests lower it
  // to exercise the splitting with small buffers.
  static void set_max_message_bytes(std::size_t bytes);

  MPI_Comm mpi_comm() const { return comm_; }
  MemorySpace memory_space() const override { return MemorySpace::host; }
  std::string backend_name() const override { return "mpi"; }
  std::unique_ptr<Communicator> split(int color, int key) override;

 protected:
  void do_sendrecv(const void* sbuf, std::size_t sbytes, int dest, void* rbuf, std::size_t rbytes, int src,
                   Channel ch) override;
  std::unique_ptr<Request::Impl> do_isendrecv(const void* sbuf, std::size_t sbytes, int dest, void* rbuf,
                                              std::size_t rbytes, int src) override;
  std::unique_ptr<Request::Impl> do_post_transfers(const std::vector<Transfer>& transfers) override;
  void do_all_gather_v(const void* send, void* recv, const std::vector<std::size_t>& bytes) override;
  void do_all_reduce(void* data, std::size_t count, DType type, ReduceOp op) override;
  void do_broadcast(void* buf, std::size_t bytes, int root) override;
  void do_barrier() override;

  float* scan_workspace(std::size_t floats) override;
  void local_copy(void* dst, const void* src, std::size_t bytes) override;
  void local_fill_identity(float* pair, int n_heads, std::size_t state_elems) override;
  void local_combine(const float* x, const float* y, float* out, int n_heads, std::size_t state_elems) override;

 private:
  MpiCommunicator(MPI_Comm owned, int rank, int size);
  // Blocking transfer with an internal tag; books the bytes.
  void exchange(const void* sbuf, std::size_t sbytes, int dest, void* rbuf, std::size_t rbytes, int src, int tag);

  MPI_Comm comm_;
  std::vector<float> workspace_;
  std::vector<unsigned char> reduce_tmp_;
};

}  // namespace ringscan::comm
