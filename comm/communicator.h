// The communication interface that sequence parallelism needs (DESIGN.md §3-4):
// point-to-point transfers (conv halo, ring K/V passing), a few collectives,
// and the Mamba-2 segment-state scan. Two implementations: MpiCommunicator
// (host buffers) and NcclCommunicator (device buffers, CUDA builds only).
// comm/ knows nothing of models, documents or jobs.
//
// Contract for callers (both backends):
//  - Buffers live in memory_space(): host memory for MPI, device memory for NCCL.
//  - Every rank of the communicator calls collectives, the state scan and
//    split() in the same order with matching sizes. Point-to-point messages
//    between a pair of ranks are matched in the order they were posted (NCCL
//    has no tags), and the receiver passes exactly the size that was sent
//    (the MPI backend aborts every rank on a mismatch; NCCL cannot check).
//  - NCCL does not buffer sends: transfers between ranks that must progress
//    together (a ring shift, an exchange) go in one call (sendrecv,
//    isendrecv, post_transfers: one NCCL group). Separately posted ones that
//    need the peer to buffer may hang on GPUs; tools/cuda_emu's NCCL reports them.
//  - Calls come from one thread (MPI_THREAD_FUNNELED).
//  - Blocking calls return when the operation is complete: for NCCL, the
//    device buffers have been written and work queued before the call on the
//    compute stream is ordered before it.
//  - Any failure (MPI/NCCL/CUDA error, bad argument, size mismatch) prints one
//    line "ringscan: error: rank R on HOST: ..." and aborts all ranks
//    (MPI_Abort): a distributed run must never hang on one rank's error.
//
// Traffic accounting: every call books the bytes and messages this rank sent
// and received, and the seconds it spent blocked (blocking calls and
// Request::wait), under the current label (counter_scope). Messages a rank
// sends to itself are not counted: they never leave the process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

namespace ringscan::comm {

enum class DType : std::uint8_t { f32, i64, u8 };
std::size_t dtype_size(DType t);

enum class ReduceOp : std::uint8_t { sum, max };

enum class MemorySpace : std::uint8_t { host, cuda };

// Suggested traffic labels; any string works (e.g. "layer3.halo").
namespace labels {
inline constexpr const char* halo = "halo";
inline constexpr const char* state = "state";
inline constexpr const char* ring = "ring";
inline constexpr const char* other = "other";  // the label outside any scope
}  // namespace labels

struct Traffic {
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t messages_sent = 0;
  std::uint64_t messages_received = 0;
  double wait_seconds = 0.0;  // wall time blocked in communication calls
  Traffic& operator+=(const Traffic& o);
};

class Communicator;

// A posted non-blocking operation. wait() blocks until it completes (its
// receive buffer is filled, its send buffer may be reused); test() returns
// whether it has. Destroying or overwriting a pending Request waits for it
// first, so buffers must outlive the Request. The Communicator must too.
class Request {
 public:
  class Impl {
   public:
    virtual ~Impl() = default;
    virtual void wait() = 0;
    virtual bool test() = 0;
    // Makes work queued later on `stream` (a cudaStream_t) wait for this
    // operation, without blocking the host; false if the backend cannot (then
    // the caller waits). Buffers stay in use until that work has run.
    virtual bool enqueue_wait(void* stream) { (void)stream; return false; }
  };

  Request() = default;
  Request(std::unique_ptr<Impl> impl, Communicator* owner, std::string label);
  Request(Request&& other) noexcept;
  Request& operator=(Request&& other) noexcept;
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;
  ~Request();

  void wait();
  bool test();
  // Device backends: the CUDA `stream` waits for the operation on an event
  // (the host does not block) and the request is complete; host backends: wait().
  void wait_on_stream(void* stream);
  bool pending() const { return impl_ != nullptr; }

 private:
  std::unique_ptr<Impl> impl_;
  Communicator* owner_ = nullptr;
  std::string label_;  // wait time is booked under the label active when posted
};

void wait_all(std::vector<Request>& requests);

// While alive, traffic is booked under `label`; the previous label returns on destruction.
class [[nodiscard]] CounterScope {
 public:
  CounterScope(Communicator& comm, std::string label);
  ~CounterScope();
  CounterScope(const CounterScope&) = delete;
  CounterScope& operator=(const CounterScope&) = delete;

 private:
  Communicator& comm_;
  std::string previous_;
};

// Arguments of the Mamba-2 segment-state scan (DESIGN.md §4.3). Each rank holds
// one segment's (a, S): a = total decay per head, S = the segment's final state
// computed from a zero initial state. Buffers (all fp32, in memory_space()):
//   decay        [n_heads]                 in
//   state        [n_heads][state_elems]    in, row-major: row h is head h's state
//                                          (head_dim x d_state flattened)
//   prefix_state [n_heads][state_elems]    out: H, the true state entering this segment
//   prefix_decay [n_heads]                 out, optional: product of the decays of all
//                                          earlier segments (and of carry_decay)
//   next_state   [n_heads][state_elems]    out, optional: decay * H + S, the true state
//                                          after this segment (the inclusive result; what a
//                                          following run of segments takes as its carry)
// Inputs are copied before any output is written, so outputs may alias inputs.
// The inclusive decay prefix_decay * decay is local. Algorithm and message counts:
// comm/state_scan_schedule.h (ceil(log2 P) rounds; every message is
// n_heads * (1 + state_elems) * 4 bytes).
//
// carry_decay / carry_state (optional, both or neither, only read on the rank
// holding the first segment of the order): an (a, S) that precedes the first
// segment. The zigzag layout uses it: scan the first halves up the ranks, then
// the second halves down the ranks with the last rank passing, as carry, its
// inclusive result of the first scan (a_incl, a*H + S).
//
// inputs_ready (device communicators only; ignored on host memory): a CUDA
// event, recorded on the compute stream (NcclCommunicator::set_compute_stream),
// after which decay, state and carry are complete. The scan then waits for that
// event only, not for everything queued on the compute stream so far, so work
// queued after the event (the rest of the layer's scan) overlaps the exchange.
// Null: the scan orders itself after all of the compute stream's queued work.
struct StateScanArgs {
  int n_heads = 0;
  std::size_t state_elems = 0;
  const float* decay = nullptr;
  const float* state = nullptr;
  float* prefix_state = nullptr;
  float* prefix_decay = nullptr;
  float* next_state = nullptr;
  const float* carry_decay = nullptr;
  const float* carry_state = nullptr;
  void* inputs_ready = nullptr;
};

class Communicator {
 public:
  virtual ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  // Pass as dest or src for "no transfer on this side" (like MPI_PROC_NULL), e.g.
  // the first and last ranks of a halo exchange. Distinct from any value a
  // caller might pass by mistake (e.g. -1, which is rejected).
  static constexpr int no_peer = std::numeric_limits<int>::min();

  int rank() const { return rank_; }
  int size() const { return size_; }
  virtual MemorySpace memory_space() const = 0;
  virtual std::string backend_name() const = 0;  // "mpi" or "nccl"

  // Collective. Ranks with the same color >= 0 form a new communicator, ordered
  // by (key, rank); a negative color returns nullptr. E.g. --sp N groups:
  // split(rank() / N, rank()). The child starts with its own, empty counters.
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;

  // ---- point to point (counts are elements of T) ----------------------------
  template <class T> void send(const T* buf, std::size_t count, int dest);
  template <class T> void recv(T* buf, std::size_t count, int src);
  // Sends to dest and receives from src at once (no deadlock in a ring); either may be no_peer.
  template <class T>
  void sendrecv(const T* sbuf, std::size_t scount, int dest, T* rbuf, std::size_t rcount, int src);
  template <class T> Request isend(const T* buf, std::size_t count, int dest);
  template <class T> Request irecv(T* buf, std::size_t count, int src);
  // One ring step: post, compute, wait.
  template <class T>
  Request isendrecv(const T* sbuf, std::size_t scount, int dest, T* rbuf, std::size_t rcount, int src);

  // Several transfers posted at once, completing together (wait() on the
  // request): NCCL runs them as one group, so they progress concurrently and
  // no order among them can deadlock (NCCL documents that separately posted
  // sends and receives between the same ranks may). A receive may not read
  // a buffer another transfer of the group writes. Sizes in bytes.
  struct Transfer {
    bool send = true;
    const void* sbuf = nullptr;  // send
    void* rbuf = nullptr;        // receive
    std::size_t bytes = 0;
    int peer = 0;
  };
  Request post_transfers(const std::vector<Transfer>& transfers);

  // ---- collectives -------------------------------------------------------------
  // recv holds size() blocks of `count` in rank order; send may equal recv + rank()*count.
  template <class T> void all_gather(const T* send, std::size_t count, T* recv);
  // Block j (counts[j] elements, known on every rank) lands at offset
  // counts[0] + ... + counts[j-1]; this rank sends counts[rank()] elements.
  template <class T> void all_gather_v(const T* send, T* recv, const std::vector<std::size_t>& counts);
  // Host-side helper to learn every rank's count before all_gather_v.
  virtual std::vector<std::size_t> all_gather_counts(std::size_t mine);
  // In place; every rank gets a bitwise identical result (MPI backend).
  void all_reduce(float* data, std::size_t count, ReduceOp op);
  void all_reduce(std::int64_t* data, std::size_t count, ReduceOp op);
  template <class T> void broadcast(T* buf, std::size_t count, int root);
  void barrier();

  // ---- the segment-state scan --------------------------------------------------
  // Exclusive scan over the ranks in natural order (rank r holds segment r):
  // H_0 = carry or 0, H_r = a_{r-1} H_{r-1} + S_{r-1}, with O(log P) rounds.
  void exclusive_state_scan(const StateScanArgs& args);
  // Same, segments ordered by `order`: order[i] is the rank holding segment i
  // (a permutation of 0..size()-1, identical on every rank).
  void exclusive_state_scan(const std::vector<int>& order, const StateScanArgs& args);

  // ---- traffic counters ----------------------------------------------------------
  CounterScope counter_scope(std::string label) { return CounterScope(*this, std::move(label)); }
  const std::string& current_label() const { return label_; }
  Traffic traffic(const std::string& label) const;  // zeros if never used
  Traffic total_traffic() const;
  const std::map<std::string, Traffic>& traffic_by_label() const { return traffic_; }
  void reset_counters();

 protected:
  Communicator(int rank, int size);

  // Internal messages must never match a user's pending receive (MPI tags).
  enum class Channel : std::uint8_t { user, state_scan };

  // Blocking exchange; either side may be no_peer. Byte counts are booked by the caller.
  virtual void do_sendrecv(const void* sbuf, std::size_t sbytes, int dest, void* rbuf,
                           std::size_t rbytes, int src, Channel ch) = 0;
  virtual std::unique_ptr<Request::Impl> do_isendrecv(const void* sbuf, std::size_t sbytes, int dest,
                                                      void* rbuf, std::size_t rbytes, int src) = 0;
  virtual std::unique_ptr<Request::Impl> do_post_transfers(const std::vector<Transfer>& transfers) = 0;
  // Collectives book their own bytes (record_send/record_recv): the algorithm decides.
  virtual void do_all_gather_v(const void* send, void* recv, const std::vector<std::size_t>& bytes) = 0;
  virtual void do_all_reduce(void* data, std::size_t count, DType type, ReduceOp op) = 0;
  virtual void do_broadcast(void* buf, std::size_t bytes, int root) = 0;
  virtual void do_barrier() = 0;

  // Local operations of the state scan, in memory_space(). Packed layout of an
  // (a, S) pair: n_heads decays followed by n_heads*state_elems state values.
  virtual float* scan_workspace(std::size_t floats) = 0;  // >= floats, owned by the communicator
  // Before the scan touches its inputs (NCCL: order after the compute stream,
  // or after inputs_ready when given: StateScanArgs).
  virtual void local_begin(void* inputs_ready) { (void)inputs_ready; }
  virtual void local_copy(void* dst, const void* src, std::size_t bytes) = 0;
  virtual void local_fill_identity(float* pair, int n_heads, std::size_t state_elems) = 0;
  // out = x o y = (x.a*y.a, y.a*x.S + y.S); out may alias x or y.
  virtual void local_combine(const float* x, const float* y, float* out, int n_heads,
                             std::size_t state_elems) = 0;
  virtual void local_finish() {}  // make scan outputs visible to the caller

  void record_send(std::size_t bytes, int peer);
  void record_recv(std::size_t bytes, int peer);
  void record_wait(const std::string& label, double seconds);
  // For collectives whose wire traffic is the library's business (NCCL): book a nominal volume.
  void record_nominal(std::uint64_t bytes_sent, std::uint64_t messages_sent, std::uint64_t bytes_received,
                      std::uint64_t messages_received);
  [[noreturn]] void fail(const std::string& what) const;

 private:
  friend class Request;
  friend class CounterScope;

  void check_peer(int peer, const char* op) const;
  void p2p(const void* sbuf, std::size_t sbytes, int dest, void* rbuf, std::size_t rbytes, int src);
  Request ip2p(const void* sbuf, std::size_t sbytes, int dest, void* rbuf, std::size_t rbytes, int src);
  void gather_bytes(const void* send, void* recv, const std::vector<std::size_t>& bytes);
  void broadcast_bytes(void* buf, std::size_t bytes, int root);

  int rank_ = 0;
  int size_ = 1;
  std::string label_ = labels::other;
  std::map<std::string, Traffic> traffic_;
};

// ---- template definitions: everything travels as bytes ---------------------------

template <class T> inline void Communicator::send(const T* buf, std::size_t count, int dest) {
  static_assert(std::is_trivially_copyable_v<T>);
  p2p(buf, count * sizeof(T), dest, nullptr, 0, no_peer);
}
template <class T> inline void Communicator::recv(T* buf, std::size_t count, int src) {
  static_assert(std::is_trivially_copyable_v<T>);
  p2p(nullptr, 0, no_peer, buf, count * sizeof(T), src);
}
template <class T>
inline void Communicator::sendrecv(const T* sbuf, std::size_t scount, int dest, T* rbuf,
                                   std::size_t rcount, int src) {
  static_assert(std::is_trivially_copyable_v<T>);
  p2p(sbuf, scount * sizeof(T), dest, rbuf, rcount * sizeof(T), src);
}
template <class T> inline Request Communicator::isend(const T* buf, std::size_t count, int dest) {
  static_assert(std::is_trivially_copyable_v<T>);
  return ip2p(buf, count * sizeof(T), dest, nullptr, 0, no_peer);
}
template <class T> inline Request Communicator::irecv(T* buf, std::size_t count, int src) {
  static_assert(std::is_trivially_copyable_v<T>);
  return ip2p(nullptr, 0, no_peer, buf, count * sizeof(T), src);
}
template <class T>
inline Request Communicator::isendrecv(const T* sbuf, std::size_t scount, int dest, T* rbuf,
                                       std::size_t rcount, int src) {
  static_assert(std::is_trivially_copyable_v<T>);
  return ip2p(sbuf, scount * sizeof(T), dest, rbuf, rcount * sizeof(T), src);
}
template <class T> inline void Communicator::all_gather(const T* send, std::size_t count, T* recv) {
  static_assert(std::is_trivially_copyable_v<T>);
  gather_bytes(send, recv, std::vector<std::size_t>(static_cast<std::size_t>(size_), count * sizeof(T)));
}
template <class T>
inline void Communicator::all_gather_v(const T* send, T* recv, const std::vector<std::size_t>& counts) {
  static_assert(std::is_trivially_copyable_v<T>);
  std::vector<std::size_t> bytes(counts);
  for (auto& b : bytes) b *= sizeof(T);
  gather_bytes(send, recv, bytes);
}
template <class T> inline void Communicator::broadcast(T* buf, std::size_t count, int root) {
  static_assert(std::is_trivially_copyable_v<T>);
  broadcast_bytes(buf, count * sizeof(T), root);
}

}  // namespace ringscan::comm
