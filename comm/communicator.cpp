// Backend-independent parts of Communicator: argument checks, traffic
// accounting, and the state-scan algorithm (run by both backends through
// their point-to-point and local hooks, so the NCCL path executes exactly
// the schedule that the MPI tests verify).
#include "comm/communicator.h"

#include <chrono>
#include <limits>
#include <utility>

#include "comm/mpi_session.h"
#include "comm/state_scan_schedule.h"

namespace ringscan::comm {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::i64: return 8;
    case DType::u8: return 1;
  }
  return 0;
}

Traffic& Traffic::operator+=(const Traffic& o) {
  bytes_sent += o.bytes_sent;
  bytes_received += o.bytes_received;
  messages_sent += o.messages_sent;
  messages_received += o.messages_received;
  wait_seconds += o.wait_seconds;
  return *this;
}

// ---- Request -----------------------------------------------------------------------

Request::Request(std::unique_ptr<Impl> impl, Communicator* owner, std::string label)
    : impl_(std::move(impl)), owner_(owner), label_(std::move(label)) {}

Request::Request(Request&& other) noexcept
    : impl_(std::move(other.impl_)), owner_(other.owner_), label_(std::move(other.label_)) {}

Request& Request::operator=(Request&& other) noexcept {
  if (this != &other) {
    wait();
    impl_ = std::move(other.impl_);
    owner_ = other.owner_;
    label_ = std::move(other.label_);
  }
  return *this;
}

// Buffers of a pending operation may not be released before it completes.
Request::~Request() { wait(); }

void Request::wait() {
  if (!impl_) return;
  const auto t0 = std::chrono::steady_clock::now();
  impl_->wait();
  if (owner_) owner_->record_wait(label_, seconds_since(t0));
  impl_.reset();
}

void Request::wait_on_stream(void* stream) {
  if (impl_ && impl_->enqueue_wait(stream)) {
    impl_.reset();
    return;
  }
  wait();
}

bool Request::test() {
  if (!impl_) return true;
  if (!impl_->test()) return false;
  impl_.reset();
  return true;
}

void wait_all(std::vector<Request>& requests) {
  for (auto& r : requests) r.wait();
}

CounterScope::CounterScope(Communicator& comm, std::string label)
    : comm_(comm), previous_(std::exchange(comm.label_, std::move(label))) {}

CounterScope::~CounterScope() { comm_.label_ = std::move(previous_); }

// ---- Communicator ----------------------------------------------------------------

Communicator::Communicator(int rank, int size) : rank_(rank), size_(size) {}

Communicator::~Communicator() = default;

void Communicator::fail(const std::string& what) const { fail_here(backend_name() + " communicator: " + what); }

void Communicator::check_peer(int peer, const char* op) const {
  if (peer < 0 || peer >= size_)
    fail(std::string(op) + ": peer rank " + std::to_string(peer) + " is outside 0.." +
         std::to_string(size_ - 1));
}

void Communicator::record_send(std::size_t bytes, int peer) {
  if (peer == rank_) return;
  auto& t = traffic_[label_];
  t.bytes_sent += bytes;
  t.messages_sent += 1;
}

void Communicator::record_recv(std::size_t bytes, int peer) {
  if (peer == rank_) return;
  auto& t = traffic_[label_];
  t.bytes_received += bytes;
  t.messages_received += 1;
}

void Communicator::record_nominal(std::uint64_t bytes_sent, std::uint64_t messages_sent, std::uint64_t bytes_received,
                                  std::uint64_t messages_received) {
  auto& t = traffic_[label_];
  t.bytes_sent += bytes_sent;
  t.messages_sent += messages_sent;
  t.bytes_received += bytes_received;
  t.messages_received += messages_received;
}

void Communicator::record_wait(const std::string& label, double seconds) {
  traffic_[label].wait_seconds += seconds;
}

Traffic Communicator::traffic(const std::string& label) const {
  auto it = traffic_.find(label);
  return it == traffic_.end() ? Traffic{} : it->second;
}

Traffic Communicator::total_traffic() const {
  Traffic sum;
  for (const auto& [label, t] : traffic_) sum += t;
  return sum;
}

void Communicator::reset_counters() { traffic_.clear(); }

void Communicator::p2p(const void* sbuf, std::size_t sbytes, int dest, void* rbuf, std::size_t rbytes,
                       int src) {
  if (dest != no_peer) check_peer(dest, "send");
  if (src != no_peer) check_peer(src, "recv");
  if ((dest != no_peer && sbytes > 0 && !sbuf) || (src != no_peer && rbytes > 0 && !rbuf))
    fail("point-to-point transfer given a null buffer");
  if (dest != no_peer) record_send(sbytes, dest);
  if (src != no_peer) record_recv(rbytes, src);
  const auto t0 = std::chrono::steady_clock::now();
  do_sendrecv(sbuf, sbytes, dest, rbuf, rbytes, src, Channel::user);
  record_wait(label_, seconds_since(t0));
}

Request Communicator::ip2p(const void* sbuf, std::size_t sbytes, int dest, void* rbuf, std::size_t rbytes,
                           int src) {
  if (dest != no_peer) check_peer(dest, "isend");
  if (src != no_peer) check_peer(src, "irecv");
  if ((dest != no_peer && sbytes > 0 && !sbuf) || (src != no_peer && rbytes > 0 && !rbuf))
    fail("non-blocking transfer given a null buffer");
  if (dest != no_peer) record_send(sbytes, dest);
  if (src != no_peer) record_recv(rbytes, src);
  return Request(do_isendrecv(sbuf, sbytes, dest, rbuf, rbytes, src), this, label_);
}

Request Communicator::post_transfers(const std::vector<Transfer>& transfers) {
  for (const auto& t : transfers) {
    check_peer(t.peer, t.send ? "post_transfers send" : "post_transfers receive");
    if (t.bytes > 0 && (t.send ? t.sbuf == nullptr : t.rbuf == nullptr)) fail("post_transfers given a null buffer");
  }
  for (const auto& t : transfers) {
    if (t.send) record_send(t.bytes, t.peer);
    else record_recv(t.bytes, t.peer);
  }
  return Request(do_post_transfers(transfers), this, label_);
}

void Communicator::gather_bytes(const void* send, void* recv, const std::vector<std::size_t>& bytes) {
  if (bytes.size() != static_cast<std::size_t>(size_))
    fail("all_gather_v given " + std::to_string(bytes.size()) + " counts for " + std::to_string(size_) +
         " ranks");
  std::size_t total = 0;
  for (auto b : bytes) total += b;
  if ((bytes[rank_] > 0 && !send) || (total > 0 && !recv)) fail("all_gather given a null buffer");
  const auto t0 = std::chrono::steady_clock::now();
  do_all_gather_v(send, recv, bytes);
  record_wait(label_, seconds_since(t0));
}

std::vector<std::size_t> Communicator::all_gather_counts(std::size_t mine) {
  if (memory_space() != MemorySpace::host) fail("all_gather_counts needs a host-memory override");
  std::vector<std::uint64_t> all(size_);
  const std::uint64_t m = mine;
  all_gather(&m, 1, all.data());
  return std::vector<std::size_t>(all.begin(), all.end());
}

void Communicator::all_reduce(float* data, std::size_t count, ReduceOp op) {
  if (count > 0 && !data) fail("all_reduce given a null buffer");
  const auto t0 = std::chrono::steady_clock::now();
  do_all_reduce(data, count, DType::f32, op);
  record_wait(label_, seconds_since(t0));
}

void Communicator::all_reduce(std::int64_t* data, std::size_t count, ReduceOp op) {
  if (count > 0 && !data) fail("all_reduce given a null buffer");
  const auto t0 = std::chrono::steady_clock::now();
  do_all_reduce(data, count, DType::i64, op);
  record_wait(label_, seconds_since(t0));
}

void Communicator::broadcast_bytes(void* buf, std::size_t bytes, int root) {
  check_peer(root, "broadcast root");
  if (bytes > 0 && !buf) fail("broadcast given a null buffer");
  const auto t0 = std::chrono::steady_clock::now();
  do_broadcast(buf, bytes, root);
  record_wait(label_, seconds_since(t0));
}

void Communicator::barrier() {
  const auto t0 = std::chrono::steady_clock::now();
  do_barrier();
  record_wait(label_, seconds_since(t0));
}

// ---- the state scan ------------------------------------------------------------------

void Communicator::exclusive_state_scan(const StateScanArgs& args) {
  std::vector<int> order(size_);
  for (int i = 0; i < size_; ++i) order[i] = i;
  exclusive_state_scan(order, args);
}

void Communicator::exclusive_state_scan(const std::vector<int>& order, const StateScanArgs& args) {
  const int P = size_;
  if (args.n_heads <= 0 || args.state_elems == 0)
    fail("state scan needs n_heads > 0 and state_elems > 0, got " + std::to_string(args.n_heads) + " and " +
         std::to_string(args.state_elems));
  if (!args.decay || !args.state || !args.prefix_state) fail("state scan given a null decay/state/prefix_state");
  if ((args.carry_decay == nullptr) != (args.carry_state == nullptr))
    fail("state scan carry needs both carry_decay and carry_state");
  if (order.size() != static_cast<std::size_t>(P))
    fail("state scan order has " + std::to_string(order.size()) + " entries for " + std::to_string(P) + " ranks");
  int pos = -1;
  std::vector<char> seen(P, 0);
  for (int i = 0; i < P; ++i) {
    const int r = order[i];
    if (r < 0 || r >= P || seen[r]) fail("state scan order is not a permutation of the ranks");
    seen[r] = 1;
    if (r == rank_) pos = i;
  }

  const std::size_t nh = static_cast<std::size_t>(args.n_heads);
  const std::size_t pair_floats = nh * (1 + args.state_elems);
  const std::size_t pair_bytes = pair_floats * sizeof(float);
  float* ws = scan_workspace(3 * pair_floats);
  float* part = ws;                    // fold of this position's current block
  float* tmp = ws + pair_floats;       // the partner's block
  float* excl = ws + 2 * pair_floats;  // fold of the positions before this one

  local_begin(args.inputs_ready);
  local_copy(part, args.decay, nh * sizeof(float));
  local_copy(part + nh, args.state, nh * args.state_elems * sizeof(float));
  bool have_excl = false;
  if (pos == 0 && args.carry_decay) {
    local_copy(excl, args.carry_decay, nh * sizeof(float));
    local_copy(excl + nh, args.carry_state, nh * args.state_elems * sizeof(float));
    local_combine(excl, part, part, args.n_heads, args.state_elems);
    have_excl = true;
  }

  for (int k = 0; k < scan_schedule::rounds(P); ++k) {
    const int partner = pos ^ (1 << k);
    if (partner >= P) continue;
    const int peer = order[partner];
    const bool i_send = scan_schedule::sends(pos, k, P);
    const bool i_recv = scan_schedule::sends(partner, k, P);
    if (i_send) record_send(pair_bytes, peer);
    if (i_recv) record_recv(pair_bytes, peer);
    const auto t0 = std::chrono::steady_clock::now();
    do_sendrecv(i_send ? part : nullptr, i_send ? pair_bytes : 0, i_send ? peer : no_peer,
                i_recv ? tmp : nullptr, i_recv ? pair_bytes : 0, i_recv ? peer : no_peer, Channel::state_scan);
    record_wait(label_, seconds_since(t0));
    if (!i_recv) continue;
    if (partner < pos) {  // tmp precedes everything this position has folded so far
      if (have_excl) {
        local_combine(tmp, excl, excl, args.n_heads, args.state_elems);
      } else {
        local_copy(excl, tmp, pair_bytes);
        have_excl = true;
      }
      if (scan_schedule::needs_part_after(pos, k, P)) local_combine(tmp, part, part, args.n_heads, args.state_elems);
    } else {  // tmp follows this position's block: only the block total changes
      local_combine(part, tmp, part, args.n_heads, args.state_elems);
    }
  }

  if (!have_excl) local_fill_identity(excl, args.n_heads, args.state_elems);
  if (args.next_state) {  // excl o (a, S), from the inputs before any output may overwrite them
    local_copy(tmp, args.decay, nh * sizeof(float));
    local_copy(tmp + nh, args.state, nh * args.state_elems * sizeof(float));
    local_combine(excl, tmp, tmp, args.n_heads, args.state_elems);
  }
  local_copy(args.prefix_state, excl + nh, nh * args.state_elems * sizeof(float));
  if (args.next_state) local_copy(args.next_state, tmp + nh, nh * args.state_elems * sizeof(float));
  if (args.prefix_decay) local_copy(args.prefix_decay, excl, nh * sizeof(float));
  local_finish();
}

}  // namespace ringscan::comm
