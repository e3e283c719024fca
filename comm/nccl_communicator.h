// Communicator over NCCL for device (GPU) buffers; built only in CUDA builds
// (RINGSCAN_HAVE_NCCL is defined for users of ringscan_comm).
//
// STATUS: tests/comm's test_comm_nccl (the MPI backend's tests over device
// buffers) passes on 1 to 4 ranks over tools/cuda_emu's NCCL emulation (NCCL's
// rules, over MPI, on emulated device memory: `tools/cuda_emu/run.sh comm`).
// On a GPU only comm_nccl_np1 has run (before the self-send fix); run
// scripts/gpu-check.sh on the next lease.
//
// Design:
//  - One GPU per rank: create() calls cudaSetDevice(local_rank() % devices)
//    (local_rank: MPI_Comm_split_type, so it holds across nodes under srun or
//    mpirun); a node with more of the communicator's ranks than GPUs stops
//    every rank with one sentence. MPI broadcasts the ncclUniqueId (the NCCL
//    bootstrap, so srun --mpi=pmix across nodes works) and does
//    barrier/count metadata.
//  - Messages to self never reach NCCL (it pairs a send to self only with a
//    receive from self in the same group): they are device copies on the
//    stream, paired in posting order like MPI's, staged when the send comes first.
//  - All NCCL work goes to this communicator's own non-blocking stream. Before
//    each call, the stream waits (cudaStreamWaitEvent) for the work already
//    queued on the compute stream (set_compute_stream; default: the legacy
//    default stream), so inputs produced by kernels are ready.
//  - Blocking calls return when the stream has finished; Request::wait() blocks
//    the host on the request's event. The ring overlap: post isendrecv, queue
//    the block's compute on the compute stream, wait. While waiting, NCCL's
//    asynchronous errors are polled (ncclCommGetAsyncError), so a failed peer
//    turns into an abort instead of a hang.
//  - Point-to-point and the state scan's messages use ncclSend/ncclRecv inside
//    ncclGroupStart/End. The state scan runs the same butterfly as the MPI
//    backend (comm/state_scan_schedule.h, shared code in communicator.cpp);
//    its combine step is a small CUDA kernel on the device (not host-staged).
//  - NCCL has no tags and cannot check sizes: peers must post matching
//    transfers in the same order with equal sizes (the MPI backend checks).
//  - Traffic: point-to-point and scan bytes are exact (what was handed to
//    NCCL). Collectives are booked with NCCL's ring-algorithm volumes, a
//    nominal figure (NCCL may choose a tree): all_gather (P-1)*block sent,
//    all_gather_v (P-1)*own block sent (direct sends), all_reduce
//    2*(P-1)*n/P bytes sent and received, broadcast n sent by every rank but
//    the one before the root, n received by every rank but the root.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"

namespace ringscan::comm {

class NcclCommunicator final : public Communicator {
 public:
  // Collective over `mpi_comm` (duplicated for metadata). Aborts all ranks
  // with a clear message when no CUDA device is visible.
  static std::unique_ptr<NcclCommunicator> create(MPI_Comm mpi_comm = MPI_COMM_WORLD);
  ~NcclCommunicator() override;

  // A cudaStream_t: calls are ordered after the work queued on it so far.
  void set_compute_stream(void* cuda_stream);
  int device() const;

  MemorySpace memory_space() const override { return MemorySpace::cuda; }
  std::string backend_name() const override { return "nccl"; }
  std::unique_ptr<Communicator> split(int color, int key) override;
  std::vector<std::size_t> all_gather_counts(std::size_t mine) override;

  struct State;  // CUDA/NCCL handles; opaque outside nccl_communicator.cpp

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
  void local_begin(void* inputs_ready) override;
  void local_copy(void* dst, const void* src, std::size_t bytes) override;
  void local_fill_identity(float* pair, int n_heads, std::size_t state_elems) override;
  void local_combine(const float* x, const float* y, float* out, int n_heads, std::size_t state_elems) override;
  void local_finish() override;

 private:
  NcclCommunicator(std::unique_ptr<State> state, int rank, int size);
  // Returns the id of a receive from self still waiting for its send, else 0.
  // after_compute: order the transfer after everything queued on the compute
  // stream (the caller's buffers); the state scan's rounds send the
  // communicator's own workspace, ordered once by local_begin, and skip it so
  // that the compute stream's later work overlaps them.
  std::uint64_t post(const void* sbuf, std::size_t sbytes, int dest, void* rbuf, std::size_t rbytes, int src,
                     bool after_compute = true);
  std::uint64_t post_self(const void* sbuf, std::size_t sbytes, bool send, void* rbuf, std::size_t rbytes, bool recv);

  std::unique_ptr<State> s_;
};

}  // namespace ringscan::comm
