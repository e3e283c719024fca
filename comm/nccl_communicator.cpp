// NcclCommunicator: see nccl_communicator.h. Runs in CI over tools/cuda_emu's
// NCCL emulation (1 to 4 ranks); on real GPUs only comm_nccl_np1 has run (it
// failed on the self-send this file now keeps away from NCCL).
#include "comm/nccl_communicator.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <deque>
#include <string>
#include <thread>
#include <utility>

#include "comm/mpi_session.h"
#include "nccl_state_kernels.h"

namespace ringscan::comm {

struct NcclCommunicator::State {
  MPI_Comm mpi = MPI_COMM_NULL;  // metadata only: ncclUniqueId, barrier, counts
  ncclComm_t nccl = nullptr;
  int device = 0;
  cudaStream_t stream = nullptr;   // all of this communicator's work
  cudaStream_t compute = nullptr;  // the caller's stream (nullptr = legacy default stream)
  cudaEvent_t compute_ready = nullptr;
  cudaEvent_t done = nullptr;
  float* workspace = nullptr;
  std::size_t workspace_floats = 0;
  // Messages to self never reach NCCL (it only pairs a send to self with a
  // receive from self posted in the same group; ours may come in separate
  // calls, e.g. isend then irecv). Matched in posting order, like MPI: a send
  // with no receive waiting is staged in a stream-ordered copy; a receive
  // posted first waits here for the send.
  struct StagedSend { void* copy; std::size_t bytes; };
  struct WaitingRecv { std::uint64_t id; void* buf; std::size_t bytes; };
  std::deque<StagedSend> self_sends;
  std::deque<WaitingRecv> self_recvs;
  std::uint64_t next_self_recv = 1;
};

namespace {

void check_cuda(cudaError_t e, const char* call) {
  if (e != cudaSuccess) fail_here(std::string(call) + " failed: " + cudaGetErrorString(e));
}

void check_nccl(ncclResult_t r, const char* call, ncclComm_t comm = nullptr) {
  if (r == ncclSuccess) return;
  std::string msg = std::string(call) + " failed: " + ncclGetErrorString(r);
  if (comm) {
    const char* last = ncclGetLastError(comm);
    if (last && *last) msg += std::string(" (") + last + ")";
  }
  fail_here(msg);
}

// Blocks until `ev` has completed, failing (instead of hanging) when NCCL
// reports an asynchronous error such as a lost peer.
void wait_event(NcclCommunicator::State& s, cudaEvent_t ev) {
  for (;;) {
    const cudaError_t e = cudaEventQuery(ev);
    if (e == cudaSuccess) return;
    if (e != cudaErrorNotReady) check_cuda(e, "cudaEventQuery");
    ncclResult_t async = ncclSuccess;
    check_nccl(ncclCommGetAsyncError(s.nccl, &async), "ncclCommGetAsyncError");
    if (async != ncclSuccess && async != ncclInProgress) check_nccl(async, "NCCL (asynchronous error)", s.nccl);
    std::this_thread::yield();
  }
}

void sync_stream(NcclCommunicator::State& s) {
  check_cuda(cudaEventRecord(s.done, s.stream), "cudaEventRecord");
  wait_event(s, s.done);
}

// Inputs produced on the caller's stream must be ready before NCCL reads them.
void order_after_compute(NcclCommunicator::State& s) {
  check_cuda(cudaEventRecord(s.compute_ready, s.compute), "cudaEventRecord");
  check_cuda(cudaStreamWaitEvent(s.stream, s.compute_ready, 0), "cudaStreamWaitEvent");
}

void check_device_pointer(const void* p, const char* what) {
  if (!p) return;
  cudaPointerAttributes attr{};
  const cudaError_t e = cudaPointerGetAttributes(&attr, p);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky-free error before reporting
    fail_here(std::string("nccl communicator: cannot inspect the ") + what + " buffer: " + cudaGetErrorString(e));
  }
  if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged)
    fail_here(std::string("nccl communicator: the ") + what +
              " buffer is not device memory (the NCCL backend takes GPU buffers)");
}

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::f32: return ncclFloat32;
    case DType::i64: return ncclInt64;
    case DType::u8: return ncclUint8;
  }
  return ncclUint8;
}

// Whether the receive from self `id` still waits for its send.
bool self_recv_waiting(const NcclCommunicator::State& s, std::uint64_t id) {
  for (const auto& r : s.self_recvs)
    if (r.id == id) return true;
  return false;
}

class NcclRequest final : public Request::Impl {
 public:
  NcclRequest(NcclCommunicator::State* s, cudaEvent_t ev, std::vector<std::uint64_t> self_recvs)
      : s_(s), ev_(ev), self_recvs_(std::move(self_recvs)) {}
  ~NcclRequest() override { cudaEventDestroy(ev_); }
  void wait() override {
    // MPI would block forever here; say so instead.
    if (self_waiting())
      fail_here("nccl communicator: waiting for a receive from self that no send to self matches (it would never "
                "complete)");
    wait_event(*s_, ev_);
  }
  bool enqueue_wait(void* stream) override {
    if (self_waiting()) return false;  // wait() says why it would hang
    check_cuda(cudaStreamWaitEvent(static_cast<cudaStream_t>(stream), ev_, 0), "cudaStreamWaitEvent");
    return true;  // the event may be destroyed now: CUDA keeps it until the wait has run
  }
  bool test() override {
    if (self_waiting()) return false;
    const cudaError_t e = cudaEventQuery(ev_);
    if (e == cudaSuccess) return true;
    if (e != cudaErrorNotReady) check_cuda(e, "cudaEventQuery");
    ncclResult_t async = ncclSuccess;
    check_nccl(ncclCommGetAsyncError(s_->nccl, &async), "ncclCommGetAsyncError");
    if (async != ncclSuccess && async != ncclInProgress) check_nccl(async, "NCCL (asynchronous error)", s_->nccl);
    return false;
  }

 private:
  bool self_waiting() const {
    for (std::uint64_t id : self_recvs_)
      if (self_recv_waiting(*s_, id)) return true;
    return false;
  }

  NcclCommunicator::State* s_;
  cudaEvent_t ev_;
  std::vector<std::uint64_t> self_recvs_;  // receives from self this request posted that waited for their send
};

// Stream and events of a new communicator on the current device.
void create_stream_and_events(NcclCommunicator::State& s) {
  check_cuda(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  check_cuda(cudaEventCreateWithFlags(&s.compute_ready, cudaEventDisableTiming), "cudaEventCreateWithFlags");
  check_cuda(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming), "cudaEventCreateWithFlags");
}

}  // namespace

std::unique_ptr<NcclCommunicator> NcclCommunicator::create(MPI_Comm mpi_comm) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) abort_all("NcclCommunicator::create called before MPI was initialised (create an MpiSession first)");
  auto s = std::make_unique<State>();
  check_mpi(MPI_Comm_dup(mpi_comm, &s->mpi), "MPI_Comm_dup");
  check_mpi(MPI_Comm_set_errhandler(s->mpi, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  int rank = 0, size = 1;
  check_mpi(MPI_Comm_rank(s->mpi, &rank), "MPI_Comm_rank");
  check_mpi(MPI_Comm_size(s->mpi, &size), "MPI_Comm_size");

  int devices = 0;
  const cudaError_t e = cudaGetDeviceCount(&devices);
  if (e != cudaSuccess || devices == 0)
    fail_here(std::string("the NCCL backend needs a CUDA device, but none is visible") +
              (e != cudaSuccess ? std::string(" (cudaGetDeviceCount: ") + cudaGetErrorString(e) + ")" : ""));
  // One GPU per rank (NCCL refuses two ranks of a communicator on one device):
  // every rank learns whether any node has more of this communicator's ranks
  // than GPUs, so all stop with the same sentence instead of some of them
  // waiting in ncclCommInitRank for ranks that failed.
  MPI_Comm node;
  check_mpi(MPI_Comm_split_type(s->mpi, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node), "MPI_Comm_split_type");
  int node_ranks = 1;
  check_mpi(MPI_Comm_size(node, &node_ranks), "MPI_Comm_size");
  check_mpi(MPI_Comm_free(&node), "MPI_Comm_free");
  int crowded = node_ranks > devices ? 1 : 0, any_crowded = 0;
  check_mpi(MPI_Allreduce(&crowded, &any_crowded, 1, MPI_INT, MPI_MAX, s->mpi), "MPI_Allreduce");
  if (any_crowded)
    fail_here("the NCCL backend needs one GPU per rank, but " +
              (crowded ? "this node runs " + std::to_string(node_ranks) + " ranks on " + std::to_string(devices) +
                             " visible GPU(s)"
                       : std::string("another node runs more ranks than it has GPUs")) +
              ": start at most one rank per GPU on every node, or use --comm mpi");
  s->device = local_rank() % devices;
  check_cuda(cudaSetDevice(s->device), "cudaSetDevice");
  create_stream_and_events(*s);

  ncclUniqueId id;
  if (rank == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  check_mpi(MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, s->mpi), "MPI_Bcast");
  check_nccl(ncclCommInitRank(&s->nccl, size, id, rank), "ncclCommInitRank");
  return std::unique_ptr<NcclCommunicator>(new NcclCommunicator(std::move(s), rank, size));
}

NcclCommunicator::NcclCommunicator(std::unique_ptr<State> state, int rank, int size)
    : Communicator(rank, size), s_(std::move(state)) {}

// Best effort: at process exit the CUDA context may already be gone.
NcclCommunicator::~NcclCommunicator() {
  if (s_->stream) cudaStreamSynchronize(s_->stream);
  for (const auto& m : s_->self_sends) cudaFree(m.copy);  // sent to self, never received
  if (s_->nccl) ncclCommDestroy(s_->nccl);
  if (s_->workspace) cudaFree(s_->workspace);
  if (s_->done) cudaEventDestroy(s_->done);
  if (s_->compute_ready) cudaEventDestroy(s_->compute_ready);
  if (s_->stream) cudaStreamDestroy(s_->stream);
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && s_->mpi != MPI_COMM_NULL) MPI_Comm_free(&s_->mpi);
}

void NcclCommunicator::set_compute_stream(void* cuda_stream) { s_->compute = static_cast<cudaStream_t>(cuda_stream); }

int NcclCommunicator::device() const { return s_->device; }

std::unique_ptr<Communicator> NcclCommunicator::split(int color, int key) {
  sync_stream(*s_);
  MPI_Comm child_mpi;
  check_mpi(MPI_Comm_split(s_->mpi, color < 0 ? MPI_UNDEFINED : color, key, &child_mpi), "MPI_Comm_split");
  ncclComm_t child_nccl = nullptr;
  check_nccl(ncclCommSplit(s_->nccl, color < 0 ? NCCL_SPLIT_NOCOLOR : color, key, &child_nccl, nullptr),
             "ncclCommSplit", s_->nccl);
  if (child_mpi == MPI_COMM_NULL) return nullptr;
  auto s = std::make_unique<State>();
  s->mpi = child_mpi;
  s->nccl = child_nccl;
  s->device = s_->device;
  s->compute = s_->compute;
  check_mpi(MPI_Comm_set_errhandler(s->mpi, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  create_stream_and_events(*s);
  int rank = 0, size = 1, nccl_rank = -1;
  check_mpi(MPI_Comm_rank(s->mpi, &rank), "MPI_Comm_rank");
  check_mpi(MPI_Comm_size(s->mpi, &size), "MPI_Comm_size");
  check_nccl(ncclCommUserRank(s->nccl, &nccl_rank), "ncclCommUserRank", s->nccl);
  if (nccl_rank != rank)  // both order by (key, parent rank); a mismatch would mix up peers
    fail_here("nccl communicator: split gave NCCL rank " + std::to_string(nccl_rank) + " but MPI rank " +
              std::to_string(rank));
  return std::unique_ptr<Communicator>(new NcclCommunicator(std::move(s), rank, size));
}

std::vector<std::size_t> NcclCommunicator::all_gather_counts(std::size_t mine) {
  std::vector<unsigned long long> all(size());
  unsigned long long m = mine;
  check_mpi(MPI_Allgather(&m, 1, MPI_UNSIGNED_LONG_LONG, all.data(), 1, MPI_UNSIGNED_LONG_LONG, s_->mpi),
            "MPI_Allgather");
  for (int q = 0; q < size(); ++q) {
    if (q == rank()) continue;
    record_send(sizeof m, q);
    record_recv(sizeof m, q);
  }
  return std::vector<std::size_t>(all.begin(), all.end());
}

// A message to self: a device-to-device copy on the stream, paired in posting
// order (State::self_sends / self_recvs). Returns the id of a receive left
// waiting for its send, else 0.
std::uint64_t NcclCommunicator::post_self(const void* sbuf, std::size_t sbytes, bool send, void* rbuf,
                                          std::size_t rbytes, bool recv) {
  State& s = *s_;
  auto size_check = [](std::size_t want, std::size_t got) {
    if (want != got)
      fail_here("nccl communicator: expected a message of " + std::to_string(want) +
                " bytes from this rank itself, received " + std::to_string(got) +
                " (sender and receiver disagree on the size)");
  };
  if (send) {
    if (!s.self_recvs.empty()) {
      const State::WaitingRecv r = s.self_recvs.front();
      s.self_recvs.pop_front();
      size_check(r.bytes, sbytes);
      local_copy(r.buf, sbuf, sbytes);
    } else {
      void* copy = nullptr;
      check_cuda(cudaMallocAsync(&copy, sbytes ? sbytes : 1, s.stream), "cudaMallocAsync");
      local_copy(copy, sbuf, sbytes);
      s.self_sends.push_back({copy, sbytes});
    }
  }
  if (!recv) return 0;
  if (!s.self_sends.empty()) {
    const State::StagedSend m = s.self_sends.front();
    s.self_sends.pop_front();
    size_check(rbytes, m.bytes);
    local_copy(rbuf, m.copy, m.bytes);
    check_cuda(cudaFreeAsync(m.copy, s.stream), "cudaFreeAsync");
    return 0;
  }
  s.self_recvs.push_back({s.next_self_recv, rbuf, rbytes});
  return s.next_self_recv++;
}

std::uint64_t NcclCommunicator::post(const void* sbuf, std::size_t sbytes, int dest, void* rbuf, std::size_t rbytes,
                                     int src, bool after_compute) {
  check_device_pointer(dest != no_peer ? sbuf : nullptr, "send");
  check_device_pointer(src != no_peer ? rbuf : nullptr, "receive");
  if (after_compute) order_after_compute(*s_);
  const std::uint64_t waiting = post_self(sbuf, sbytes, dest == rank(), rbuf, rbytes, src == rank());
  const bool send = dest != no_peer && dest != rank(), recv = src != no_peer && src != rank();
  if (!send && !recv) return waiting;
  check_nccl(ncclGroupStart(), "ncclGroupStart");
  if (send) check_nccl(ncclSend(sbuf, sbytes, ncclUint8, dest, s_->nccl, s_->stream), "ncclSend", s_->nccl);
  if (recv) check_nccl(ncclRecv(rbuf, rbytes, ncclUint8, src, s_->nccl, s_->stream), "ncclRecv", s_->nccl);
  check_nccl(ncclGroupEnd(), "ncclGroupEnd", s_->nccl);
  return waiting;
}

void NcclCommunicator::do_sendrecv(const void* sbuf, std::size_t sbytes, int dest, void* rbuf, std::size_t rbytes,
                                   int src, Channel ch) {
  if (post(sbuf, sbytes, dest, rbuf, rbytes, src, ch != Channel::state_scan))
    fail_here("nccl communicator: a blocking receive from self with no send to self posted before it would never "
              "complete");
  sync_stream(*s_);
}

std::unique_ptr<Request::Impl> NcclCommunicator::do_isendrecv(const void* sbuf, std::size_t sbytes, int dest,
                                                              void* rbuf, std::size_t rbytes, int src) {
  const std::uint64_t waiting = post(sbuf, sbytes, dest, rbuf, rbytes, src);
  cudaEvent_t ev;
  check_cuda(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), "cudaEventCreateWithFlags");
  check_cuda(cudaEventRecord(ev, s_->stream), "cudaEventRecord");
  return std::make_unique<NcclRequest>(s_.get(), ev, std::vector<std::uint64_t>{waiting});
}

std::unique_ptr<Request::Impl> NcclCommunicator::do_post_transfers(const std::vector<Transfer>& transfers) {
  for (const auto& t : transfers) check_device_pointer(t.bytes ? (t.send ? t.sbuf : t.rbuf) : nullptr, "transfer");
  order_after_compute(*s_);
  std::vector<std::uint64_t> waiting;
  bool remote = false;
  for (const auto& t : transfers) {
    if (t.peer != rank()) {
      remote = true;
      continue;
    }
    if (const std::uint64_t id = post_self(t.sbuf, t.bytes, t.send, t.rbuf, t.bytes, !t.send)) waiting.push_back(id);
  }
  if (remote) {
    check_nccl(ncclGroupStart(), "ncclGroupStart");
    for (const auto& t : transfers) {
      if (t.peer == rank()) continue;
      if (t.send)
        check_nccl(ncclSend(t.sbuf, t.bytes, ncclUint8, t.peer, s_->nccl, s_->stream), "ncclSend", s_->nccl);
      else
        check_nccl(ncclRecv(t.rbuf, t.bytes, ncclUint8, t.peer, s_->nccl, s_->stream), "ncclRecv", s_->nccl);
    }
    check_nccl(ncclGroupEnd(), "ncclGroupEnd", s_->nccl);
  }
  cudaEvent_t ev;
  check_cuda(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), "cudaEventCreateWithFlags");
  check_cuda(cudaEventRecord(ev, s_->stream), "cudaEventRecord");
  return std::make_unique<NcclRequest>(s_.get(), ev, std::move(waiting));
}

void NcclCommunicator::do_all_gather_v(const void* send, void* recv, const std::vector<std::size_t>& bytes) {
  const int P = size(), r = rank();
  std::vector<std::size_t> offset(P, 0);
  for (int j = 1; j < P; ++j) offset[j] = offset[j - 1] + bytes[j - 1];
  auto* out = static_cast<unsigned char*>(recv);
  check_device_pointer(bytes[r] ? send : nullptr, "all_gather send");
  check_device_pointer(recv, "all_gather receive");
  order_after_compute(*s_);
  bool equal = true;
  for (auto b : bytes) equal = equal && b == bytes[0];
  if (equal) {
    if (bytes[0] > 0)
      check_nccl(ncclAllGather(send, recv, bytes[0], ncclUint8, s_->nccl, s_->stream), "ncclAllGather", s_->nccl);
  } else {
    if (out + offset[r] != send && bytes[r] > 0)
      check_cuda(cudaMemcpyAsync(out + offset[r], send, bytes[r], cudaMemcpyDeviceToDevice, s_->stream),
                 "cudaMemcpyAsync");
    // Sizes are known on every rank, so both sides skip the same empty transfers.
    check_nccl(ncclGroupStart(), "ncclGroupStart");
    for (int q = 0; q < P; ++q) {
      if (q == r) continue;
      if (bytes[r] > 0)
        check_nccl(ncclSend(send, bytes[r], ncclUint8, q, s_->nccl, s_->stream), "ncclSend", s_->nccl);
      if (bytes[q] > 0)
        check_nccl(ncclRecv(out + offset[q], bytes[q], ncclUint8, q, s_->nccl, s_->stream), "ncclRecv", s_->nccl);
    }
    check_nccl(ncclGroupEnd(), "ncclGroupEnd", s_->nccl);
  }
  for (int q = 0; q < P; ++q) {
    if (q == r) continue;
    record_send(bytes[r], q);
    record_recv(bytes[q], q);
  }
  sync_stream(*s_);
}

void NcclCommunicator::do_all_reduce(void* data, std::size_t count, DType type, ReduceOp op) {
  if (type == DType::u8) fail_here("nccl communicator: all_reduce of bytes is not supported");
  check_device_pointer(count ? data : nullptr, "all_reduce");
  order_after_compute(*s_);
  if (count > 0)
    check_nccl(ncclAllReduce(data, data, count, nccl_type(type), op == ReduceOp::sum ? ncclSum : ncclMax, s_->nccl,
                             s_->stream),
               "ncclAllReduce", s_->nccl);
  const int P = size();
  const std::uint64_t nominal = 2 * static_cast<std::uint64_t>(P - 1) * count * dtype_size(type) / P;
  record_nominal(nominal, 2 * static_cast<std::uint64_t>(P - 1), nominal, 2 * static_cast<std::uint64_t>(P - 1));
  sync_stream(*s_);
}

void NcclCommunicator::do_broadcast(void* buf, std::size_t bytes, int root) {
  check_device_pointer(bytes ? buf : nullptr, "broadcast");
  order_after_compute(*s_);
  if (bytes > 0)
    check_nccl(ncclBroadcast(buf, buf, bytes, ncclUint8, root, s_->nccl, s_->stream), "ncclBroadcast", s_->nccl);
  const int P = size(), r = rank();
  if (P > 1 && r != (root - 1 + P) % P) record_send(bytes, (r + 1) % P);
  if (r != root) record_recv(bytes, (r - 1 + P) % P);
  sync_stream(*s_);
}

void NcclCommunicator::do_barrier() {
  sync_stream(*s_);
  check_mpi(MPI_Barrier(s_->mpi), "MPI_Barrier");
}

float* NcclCommunicator::scan_workspace(std::size_t floats) {
  if (s_->workspace_floats < floats) {
    sync_stream(*s_);  // the old buffer may still be in use by queued work
    if (s_->workspace) check_cuda(cudaFree(s_->workspace), "cudaFree");
    s_->workspace = nullptr;
    check_cuda(cudaMalloc(reinterpret_cast<void**>(&s_->workspace), floats * sizeof(float)), "cudaMalloc");
    s_->workspace_floats = floats;
  }
  return s_->workspace;
}

void NcclCommunicator::local_begin(void* inputs_ready) {
  if (!inputs_ready) return order_after_compute(*s_);
  check_cuda(cudaStreamWaitEvent(s_->stream, static_cast<cudaEvent_t>(inputs_ready), 0), "cudaStreamWaitEvent");
}

void NcclCommunicator::local_copy(void* dst, const void* src, std::size_t bytes) {
  if (dst != src && bytes > 0)
    check_cuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s_->stream), "cudaMemcpyAsync");
}

void NcclCommunicator::local_fill_identity(float* pair, int n_heads, std::size_t state_elems) {
  check_cuda(cuda::launch_state_identity(pair, n_heads, state_elems, s_->stream), "state_identity_kernel launch");
}

void NcclCommunicator::local_combine(const float* x, const float* y, float* out, int n_heads,
                                     std::size_t state_elems) {
  check_cuda(cuda::launch_state_combine(x, y, out, n_heads, state_elems, s_->stream), "state_combine_kernel launch");
}

void NcclCommunicator::local_finish() { sync_stream(*s_); }

}  // namespace ringscan::comm
