#include "comm/mpi_communicator.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace ringscan::comm {

namespace {

// MPI counts are int: larger transfers go as several messages, matched in order.
std::size_t g_max_message_bytes = std::size_t{1} << 30;

// Tags keep internal traffic apart from a user's pending receives.
constexpr int kTagUser = 1;
constexpr int kTagStateScan = 2;
constexpr int kTagGather = 3;
constexpr int kTagReduce = 4;
constexpr int kTagBroadcast = 5;

struct ExpectedRecv {
  std::size_t request;  // index into the request list
  std::size_t bytes;
  int src;
};

// The MPI requests of one transfer (both directions, every chunk).
struct Posted {
  std::vector<MPI_Request> requests;
  std::vector<ExpectedRecv> expected;
};

void post_send(MPI_Comm comm, const void* buf, std::size_t bytes, int dest, int tag, Posted& p) {
  const auto* b = static_cast<const unsigned char*>(buf);
  std::size_t off = 0;
  do {  // a zero-byte transfer is still one (empty) message, as the receiver expects
    const std::size_t n = std::min(bytes - off, g_max_message_bytes);
    MPI_Request req;
    check_mpi(MPI_Isend(b + off, static_cast<int>(n), MPI_BYTE, dest, tag, comm, &req), "MPI_Isend");
    p.requests.push_back(req);
    off += n;
  } while (off < bytes);
}

void post_recv(MPI_Comm comm, void* buf, std::size_t bytes, int src, int tag, Posted& p) {
  auto* b = static_cast<unsigned char*>(buf);
  std::size_t off = 0;
  do {
    const std::size_t n = std::min(bytes - off, g_max_message_bytes);
    MPI_Request req;
    check_mpi(MPI_Irecv(b + off, static_cast<int>(n), MPI_BYTE, src, tag, comm, &req), "MPI_Irecv");
    p.expected.push_back({p.requests.size(), n, src});
    p.requests.push_back(req);
    off += n;
  } while (off < bytes);
}

// Checks one completed request: its error code, and for a receive, that the
// message had exactly the expected size.
void check_completed(int rc, const char* call, MPI_Status& status, const Posted& p, std::size_t index) {
  check_mpi(rc, call);
  for (const auto& e : p.expected) {
    if (e.request != index) continue;
    int got = 0;
    check_mpi(MPI_Get_count(&status, MPI_BYTE, &got), "MPI_Get_count");
    if (static_cast<std::size_t>(got) != e.bytes)
      fail_here("mpi communicator: expected a message of " + std::to_string(e.bytes) + " bytes from rank " +
                std::to_string(e.src) + " of the communicator, received " + std::to_string(got) +
                " (sender and receiver disagree on the size)");
  }
}

// Requests are completed one at a time with MPI_Wait/MPI_Test: with Open MPI
// 4.1.4, MPI_Waitall on a duplicated communicator with MPI_ERRORS_RETURN
// sometimes never returns after a truncated receive (seen on this project's
// CI machine), which would turn a clear error into a hang.
void complete(Posted& p) {
  for (std::size_t i = 0; i < p.requests.size(); ++i) {
    if (p.requests[i] == MPI_REQUEST_NULL) continue;
    MPI_Status status;
    const int rc = MPI_Wait(&p.requests[i], &status);
    check_completed(rc, "MPI_Wait", status, p, i);
  }
  p.requests.clear();
  p.expected.clear();
}

class MpiRequest final : public Request::Impl {
 public:
  explicit MpiRequest(Posted p) : p_(std::move(p)) {}
  void wait() override { complete(p_); }
  bool test() override {
    bool all = true;
    for (std::size_t i = 0; i < p_.requests.size(); ++i) {
      if (p_.requests[i] == MPI_REQUEST_NULL) continue;  // completed by an earlier test()
      MPI_Status status;
      int flag = 0;
      const int rc = MPI_Test(&p_.requests[i], &flag, &status);
      if (rc != MPI_SUCCESS || flag) check_completed(rc, "MPI_Test", status, p_, i);
      all = all && flag;
    }
    if (all) {
      p_.requests.clear();
      p_.expected.clear();
    }
    return all;
  }

 private:
  Posted p_;
};

Posted post(MPI_Comm comm, const void* sbuf, std::size_t sbytes, int dest, void* rbuf, std::size_t rbytes, int src,
            int tag) {
  constexpr int no_peer = Communicator::no_peer;
  Posted p;
  // Receive first: a message to self then finds its receive already posted.
  if (src != no_peer) post_recv(comm, rbuf, rbytes, src, tag, p);
  if (dest != no_peer) post_send(comm, sbuf, sbytes, dest, tag, p);
  return p;
}

// out[i] = op(a[i], b[i]); out may alias a or b. Operands keep their order
// (lower rank first) so both partners of an exchange compute the same bits.
template <class T>
void reduce_typed(const T* a, const T* b, T* out, std::size_t n, ReduceOp op) {
  if (op == ReduceOp::sum) {
    for (std::size_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
  } else {
    // NaN in either operand wins, whichever side it is on.
    for (std::size_t i = 0; i < n; ++i) out[i] = (a[i] != a[i] || a[i] > b[i]) ? a[i] : b[i];
  }
}

void reduce(const void* a, const void* b, void* out, std::size_t n, DType type, ReduceOp op) {
  switch (type) {
    case DType::f32:
      reduce_typed(static_cast<const float*>(a), static_cast<const float*>(b), static_cast<float*>(out), n, op);
      return;
    case DType::i64:
      reduce_typed(static_cast<const std::int64_t*>(a), static_cast<const std::int64_t*>(b),
                   static_cast<std::int64_t*>(out), n, op);
      return;
    case DType::u8:
      fail_here("mpi communicator: all_reduce of bytes is not supported");
  }
}

}  // namespace

void MpiCommunicator::set_max_message_bytes(std::size_t bytes) {
  if (bytes == 0 || bytes > (std::size_t{1} << 30)) abort_all("MpiCommunicator::set_max_message_bytes: needs 1..2^30 bytes");
  g_max_message_bytes = bytes;
}

std::unique_ptr<MpiCommunicator> MpiCommunicator::create(MPI_Comm parent) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) abort_all("MpiCommunicator::create called before MPI was initialised (create an MpiSession first)");
  MPI_Comm dup;
  check_mpi(MPI_Comm_dup(parent, &dup), "MPI_Comm_dup");
  check_mpi(MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  int rank = 0, size = 1;
  check_mpi(MPI_Comm_rank(dup, &rank), "MPI_Comm_rank");
  check_mpi(MPI_Comm_size(dup, &size), "MPI_Comm_size");
  return std::unique_ptr<MpiCommunicator>(new MpiCommunicator(dup, rank, size));
}

MpiCommunicator::MpiCommunicator(MPI_Comm owned, int rank, int size) : Communicator(rank, size), comm_(owned) {}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

std::unique_ptr<Communicator> MpiCommunicator::split(int color, int key) {
  MPI_Comm child;
  check_mpi(MPI_Comm_split(comm_, color < 0 ? MPI_UNDEFINED : color, key, &child), "MPI_Comm_split");
  if (child == MPI_COMM_NULL) return nullptr;
  check_mpi(MPI_Comm_set_errhandler(child, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  int rank = 0, size = 1;
  check_mpi(MPI_Comm_rank(child, &rank), "MPI_Comm_rank");
  check_mpi(MPI_Comm_size(child, &size), "MPI_Comm_size");
  return std::unique_ptr<Communicator>(new MpiCommunicator(child, rank, size));
}

void MpiCommunicator::do_sendrecv(const void* sbuf, std::size_t sbytes, int dest, void* rbuf, std::size_t rbytes,
                                  int src, Channel ch) {
  const int tag = ch == Channel::user ? kTagUser : kTagStateScan;
  Posted p = post(comm_, sbuf, sbytes, dest, rbuf, rbytes, src, tag);
  complete(p);
}

std::unique_ptr<Request::Impl> MpiCommunicator::do_isendrecv(const void* sbuf, std::size_t sbytes, int dest,
                                                             void* rbuf, std::size_t rbytes, int src) {
  return std::make_unique<MpiRequest>(post(comm_, sbuf, sbytes, dest, rbuf, rbytes, src, kTagUser));
}

std::unique_ptr<Request::Impl> MpiCommunicator::do_post_transfers(const std::vector<Transfer>& transfers) {
  Posted p;
  for (const auto& t : transfers)  // receives first: a message to self then finds its receive posted
    if (!t.send) post_recv(comm_, t.rbuf, t.bytes, t.peer, kTagUser, p);
  for (const auto& t : transfers)
    if (t.send) post_send(comm_, t.sbuf, t.bytes, t.peer, kTagUser, p);
  return std::make_unique<MpiRequest>(std::move(p));
}

void MpiCommunicator::exchange(const void* sbuf, std::size_t sbytes, int dest, void* rbuf, std::size_t rbytes,
                               int src, int tag) {
  if (dest != no_peer) record_send(sbytes, dest);
  if (src != no_peer) record_recv(rbytes, src);
  Posted p = post(comm_, sbuf, sbytes, dest, rbuf, rbytes, src, tag);
  complete(p);
}

void MpiCommunicator::do_all_gather_v(const void* send, void* recv, const std::vector<std::size_t>& bytes) {
  const int P = size(), r = rank();
  std::vector<std::size_t> offset(P, 0);
  for (int j = 1; j < P; ++j) offset[j] = offset[j - 1] + bytes[j - 1];
  auto* out = static_cast<unsigned char*>(recv);
  if (out + offset[r] != send && bytes[r] > 0) std::memcpy(out + offset[r], send, bytes[r]);
  const int right = (r + 1) % P, left = (r - 1 + P) % P;
  for (int s = 0; s < P - 1; ++s) {
    const int sb = (r - s + P) % P;      // the block that arrived in the previous step (own block first)
    const int rb = (r - s - 1 + P) % P;  // the block the left neighbour forwards now
    exchange(out + offset[sb], bytes[sb], right, out + offset[rb], bytes[rb], left, kTagGather);
  }
}

void MpiCommunicator::do_all_reduce(void* data, std::size_t count, DType type, ReduceOp op) {
  const int P = size(), r = rank();
  if (P == 1) return;
  const std::size_t n = count * dtype_size(type);
  reduce_tmp_.resize(std::max<std::size_t>(n, 1));
  void* tmp = reduce_tmp_.data();
  int p2 = 1;
  while (p2 * 2 <= P) p2 *= 2;
  const int rem = P - p2;

  int newrank;
  if (r < 2 * rem) {
    if (r % 2 == 0) {
      exchange(data, n, r + 1, nullptr, 0, no_peer, kTagReduce);
      newrank = -1;
    } else {
      exchange(nullptr, 0, no_peer, tmp, n, r - 1, kTagReduce);
      reduce(tmp, data, data, count, type, op);
      newrank = r / 2;
    }
  } else {
    newrank = r - rem;
  }
  if (newrank >= 0) {
    for (int mask = 1; mask < p2; mask <<= 1) {
      const int newdst = newrank ^ mask;
      const int dst = newdst < rem ? newdst * 2 + 1 : newdst + rem;
      exchange(data, n, dst, tmp, n, dst, kTagReduce);
      if (dst < r)
        reduce(tmp, data, data, count, type, op);
      else
        reduce(data, tmp, data, count, type, op);
    }
  }
  if (r < 2 * rem) {
    if (r % 2 == 1)
      exchange(data, n, r - 1, nullptr, 0, no_peer, kTagReduce);
    else
      exchange(nullptr, 0, no_peer, data, n, r + 1, kTagReduce);
  }
}

void MpiCommunicator::do_broadcast(void* buf, std::size_t bytes, int root) {
  const int P = size();
  const int v = (rank() - root + P) % P;
  int mask = 1;
  while (mask < P) {
    if (v & mask) {
      exchange(nullptr, 0, no_peer, buf, bytes, (v - mask + root) % P, kTagBroadcast);
      break;
    }
    mask <<= 1;
  }
  for (mask >>= 1; mask > 0; mask >>= 1)
    if (v + mask < P) exchange(buf, bytes, (v + mask + root) % P, nullptr, 0, no_peer, kTagBroadcast);
}

void MpiCommunicator::do_barrier() { check_mpi(MPI_Barrier(comm_), "MPI_Barrier"); }

float* MpiCommunicator::scan_workspace(std::size_t floats) {
  if (workspace_.size() < floats) workspace_.resize(floats);
  return workspace_.data();
}

void MpiCommunicator::local_copy(void* dst, const void* src, std::size_t bytes) {
  if (dst != src && bytes > 0) std::memmove(dst, src, bytes);
}

void MpiCommunicator::local_fill_identity(float* pair, int n_heads, std::size_t state_elems) {
  const std::size_t nh = static_cast<std::size_t>(n_heads);
  std::fill(pair, pair + nh, 1.0f);
  std::fill(pair + nh, pair + nh + nh * state_elems, 0.0f);
}

void MpiCommunicator::local_combine(const float* x, const float* y, float* out, int n_heads,
                                    std::size_t state_elems) {
  const std::size_t nh = static_cast<std::size_t>(n_heads);
  for (std::size_t h = 0; h < nh; ++h) {
    const float xa = x[h], ya = y[h];  // read before out[h] may overwrite either
    const float* xs = x + nh + h * state_elems;
    const float* ys = y + nh + h * state_elems;
    float* os = out + nh + h * state_elems;
    for (std::size_t e = 0; e < state_elems; ++e) os[e] = ya * xs[e] + ys[e];
    out[h] = xa * ya;
  }
}

}  // namespace ringscan::comm
