// cuda_emu: NCCL carried over MPI between the host processes of an mpirun, on
// emulated device buffers (host memory the emulator knows as device memory).
// Every call completes before it returns, after running what its stream had
// queued (deferred streams, README): a transfer reads its buffer only once
// the work its stream waits for has run, so a send not ordered after the
// kernel that fills its buffer sends stale or poisoned data. A receive's data
// arrives at the call, so a consumer that forgets to wait for it is not caught.
//
// Rules of real NCCL enforced here, as NCCL 2.x reports them (the result code,
// and the sentence ncclGetLastError returns):
//  - buffers must be device memory (ncclInvalidArgument); peers and roots in
//    range; counts within the allocation (an emulator ERROR report, like any
//    out-of-bounds device access);
//  - a send to self needs a matching receive from self in the same group, and
//    the other way round (ncclInvalidUsage, "Trying to send to self without a
//    matching recv");
//  - two ranks of one communicator on the same device of the same host
//    (ncclInvalidUsage, "Duplicate GPU detected"): with CUDA_EMU_DEVICES=N each
//    process may pick its own of N emulated devices;
//  - ncclGroupEnd without ncclGroupStart (ncclInvalidUsage).
// Not checked by NCCL, reported here as emulator ERRORs because they are bugs
// that corrupt data or hang on a GPU: a receive whose size differs from the
// matching send's; and a send that relies on buffering: sends are synchronous
// here (MPI_Issend, complete once matched), so transfers posted in an order
// that needs the peer to buffer a send hang, as NCCL may on a GPU, and after
// CUDA_EMU_NCCL_TIMEOUT seconds (default 120) the run stops with a report.
//
// Bootstrap: ncclGetUniqueId writes the caller's MPI_COMM_WORLD rank into the
// id; ncclCommInitRank sends (rank, world rank) to that process over
// MPI_COMM_WORLD (tags from kTagInit), which answers with the member list, and
// the members build their own MPI communicator (MPI_Comm_create_group). So the
// rank that made the id must join the communicator (real NCCL does not need
// that; ringscan always does it), and the ranks must be MPI processes, which
// is also how ringscan bootstraps real NCCL (the id travels over MPI).
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "nccl.h"

struct ncclComm {
  MPI_Comm mpi = MPI_COMM_NULL;
  int rank = 0;
  int size = 1;
  int device = 0;
  std::string last_error;
};

namespace {

constexpr char kMagic[] = "cuda-emu-nccl";
constexpr int kTagInit = 31000;  // + id serial % 1000, on MPI_COMM_WORLD during ncclCommInitRank
constexpr int kTagP2p = 1;

struct IdBody {
  char magic[sizeof kMagic];
  int root_world_rank;
  int serial;
  long pid;
};
static_assert(sizeof(IdBody) <= NCCL_UNIQUE_ID_BYTES);

std::string g_last_error;  // for ncclGetLastError(nullptr)

ncclResult_t fail(ncclComm_t comm, ncclResult_t r, const std::string& why) {
  g_last_error = why;
  if (comm) comm->last_error = why;
  if (std::getenv("NCCL_DEBUG")) std::fprintf(stderr, "[cuda-emu] NCCL WARN %s\n", why.c_str());
  return r;
}

size_t type_size(ncclDataType_t t) {
  switch (t) {
    case ncclInt8: case ncclUint8: return 1;
    case ncclFloat16: case ncclBfloat16: return 2;
    case ncclInt32: case ncclUint32: case ncclFloat32: return 4;
    case ncclInt64: case ncclUint64: case ncclFloat64: return 8;
    default: return 0;
  }
}

MPI_Datatype mpi_type(ncclDataType_t t) {
  switch (t) {
    case ncclInt8: return MPI_INT8_T;
    case ncclUint8: return MPI_UINT8_T;
    case ncclInt32: return MPI_INT32_T;
    case ncclUint32: return MPI_UINT32_T;
    case ncclInt64: return MPI_INT64_T;
    case ncclUint64: return MPI_UINT64_T;
    case ncclFloat32: return MPI_FLOAT;
    case ncclFloat64: return MPI_DOUBLE;
    default: return MPI_DATATYPE_NULL;  // fp16/bf16 reductions: not needed by ringscan
  }
}

MPI_Op mpi_op(ncclRedOp_t op) {
  switch (op) {
    case ncclSum: return MPI_SUM;
    case ncclProd: return MPI_PROD;
    case ncclMax: return MPI_MAX;
    case ncclMin: return MPI_MIN;
    default: return MPI_OP_NULL;
  }
}

// NCCL rejects host pointers; a range past the allocation is the emulator's usual ERROR report.
ncclResult_t check_buffer(ncclComm_t comm, const void* p, size_t bytes, const char* call, const char* which) {
  if (bytes == 0) return ncclSuccess;
  if (!p || !emu::device_range(p, bytes, call, which))
    return fail(comm, ncclInvalidArgument,
                std::string(call) + " : " + which + " buffer " + (p ? "is not a valid device pointer" : "is NULL"));
  return ncclSuccess;
}

ncclResult_t check_comm(ncclComm_t comm, const char* call) {
  if (!comm) return fail(nullptr, ncclInvalidArgument, std::string(call) + " : comm argument is NULL");
  return ncclSuccess;
}

void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  emu::report("emulated NCCL: %s failed: %s", what, msg);
}

// ---- groups -------------------------------------------------------------------------

struct P2p {
  ncclComm_t comm;
  bool send;
  void* buf;
  size_t bytes;
  int peer;
};

int g_group_depth = 0;
std::vector<P2p> g_p2p;
std::vector<std::function<ncclResult_t()>> g_collectives;  // in call order, after the group's p2p

// Runs one group's point-to-point operations: self pairs by copy, the rest over MPI.
ncclResult_t run_p2p(std::vector<P2p>& ops) {
  // Self: the k-th send to self of a communicator pairs with its k-th receive from self.
  std::vector<P2p*> self_send, self_recv;
  for (auto& op : ops)
    if (op.peer == op.comm->rank) (op.send ? self_send : self_recv).push_back(&op);
  for (auto* s : self_send) {
    P2p* match = nullptr;
    for (auto*& r : self_recv)
      if (r && r->comm == s->comm) { match = r; r = nullptr; break; }
    if (!match) return fail(s->comm, ncclInvalidUsage, "Trying to send to self without a matching recv");
    if (match->bytes != s->bytes)
      emu::report("emulated NCCL: a receive from self of %zu B matched a send to self of %zu B", match->bytes,
                  s->bytes);
    std::memmove(match->buf, s->buf, std::min(match->bytes, s->bytes));
  }
  for (auto* r : self_recv)
    if (r) return fail(r->comm, ncclInvalidUsage, "Trying to recv from self without a matching send");

  std::vector<MPI_Request> reqs;
  std::vector<const P2p*> recv_of;  // per request: the receive it completes, or null
  std::vector<const P2p*> op_of;    // per request: its operation
  for (int pass = 0; pass < 2; ++pass)  // receives first, then sends
    for (auto& op : ops) {
      if (op.peer == op.comm->rank || op.send != (pass == 1)) continue;
      MPI_Request req;
      if (op.bytes > static_cast<size_t>(INT_MAX)) {
        emu::report("emulated NCCL: a transfer of %zu B is above what the emulation carries (2 GiB)", op.bytes);
        return fail(op.comm, ncclInternalError, "transfer too large for the emulation");
      }
      if (op.send)  // synchronous mode: completes only once the peer's receive has matched it, as on a GPU
        check_mpi(MPI_Issend(op.buf, static_cast<int>(op.bytes), MPI_BYTE, op.peer, kTagP2p, op.comm->mpi, &req),
                  "MPI_Issend");
      else
        check_mpi(MPI_Irecv(op.buf, static_cast<int>(op.bytes), MPI_BYTE, op.peer, kTagP2p, op.comm->mpi, &req),
                  "MPI_Irecv");
      reqs.push_back(req);
      recv_of.push_back(op.send ? nullptr : &op);
      op_of.push_back(&op);
    }
  // A group whose transfers are not all matched within the limit would hang on
  // a GPU (NCCL does not buffer sends): say so and stop, rather than hang CI.
  const char* limit_env = std::getenv("CUDA_EMU_NCCL_TIMEOUT");
  const double limit = limit_env ? std::atof(limit_env) : 120.0;
  const double t0 = MPI_Wtime();
  for (size_t i = 0; i < reqs.size(); ++i) {
    MPI_Status st;
    int done = 0, rc = MPI_SUCCESS;
    while (!done && rc == MPI_SUCCESS) {
      rc = MPI_Test(&reqs[i], &done, &st);
      if (!done && MPI_Wtime() - t0 > limit) {
        emu::report("emulated NCCL: a %s of %zu B %s rank %d was not matched within %.0f s: on a GPU this group "
                    "would hang (NCCL sends are not buffered: post the matching transfers in the same group, or "
                    "in an order every rank reaches)",
                    op_of[i]->send ? "send" : "receive", op_of[i]->bytes, op_of[i]->send ? "to" : "from",
                    op_of[i]->peer, limit);
        std::fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, 1);
      }
    }
    if (rc != MPI_SUCCESS) {  // a truncated receive: the sender sent more than was posted
      emu::report("emulated NCCL: a receive of %zu B from rank %d got a larger message (sizes disagree)",
                  recv_of[i] ? recv_of[i]->bytes : 0, recv_of[i] ? recv_of[i]->peer : -1);
      continue;
    }
    if (!recv_of[i]) continue;
    int got = 0;
    MPI_Get_count(&st, MPI_BYTE, &got);
    if (static_cast<size_t>(got) != recv_of[i]->bytes)
      emu::report("emulated NCCL: a receive of %zu B from rank %d matched a send of %d B (sizes disagree)",
                  recv_of[i]->bytes, recv_of[i]->peer, got);
  }
  return ncclSuccess;
}

ncclResult_t end_group() {
  std::vector<P2p> ops;
  ops.swap(g_p2p);
  std::vector<std::function<ncclResult_t()>> colls;
  colls.swap(g_collectives);
  ncclResult_t r = run_p2p(ops);
  for (auto& c : colls)
    if (r == ncclSuccess) r = c();
  return r;
}

ncclResult_t enqueue_p2p(P2p op, const char* call, ncclDataType_t t, size_t count, cudaStream_t s) {
  if (ncclResult_t r = check_comm(op.comm, call)) return r;
  emu::stream_flush(s);  // the transfer runs now: first what its stream queued before it
  if (type_size(t) == 0) return fail(op.comm, ncclInvalidArgument, std::string(call) + " : invalid type");
  if (op.peer < 0 || op.peer >= op.comm->size)
    return fail(op.comm, ncclInvalidArgument,
                std::string(call) + " : invalid peer " + std::to_string(op.peer) + ", nranks " +
                    std::to_string(op.comm->size));
  op.bytes = count * type_size(t);
  if (ncclResult_t r = check_buffer(op.comm, op.buf, op.bytes, call, op.send ? "send" : "recv")) return r;
  g_p2p.push_back(op);
  return g_group_depth == 0 ? end_group() : ncclSuccess;
}

ncclResult_t collective(ncclComm_t comm, std::function<ncclResult_t()> fn) {
  if (g_group_depth == 0) return fn();
  g_collectives.push_back(std::move(fn));
  return ncclSuccess;
}

}  // namespace

// ---- API ---------------------------------------------------------------------------

ncclResult_t ncclGetVersion(int* version) {
  *version = NCCL_VERSION_CODE;
  return ncclSuccess;
}

const char* ncclGetErrorString(ncclResult_t r) {
  switch (r) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error (run with NCCL_DEBUG=INFO for details)";
    case ncclSystemError: return "unhandled system error (run with NCCL_DEBUG=INFO for details)";
    case ncclInternalError: return "internal error - please report this issue to the NCCL developers";
    case ncclInvalidArgument: return "invalid argument (run with NCCL_DEBUG=WARN for details)";
    case ncclInvalidUsage: return "invalid usage (run with NCCL_DEBUG=WARN for details)";
    case ncclRemoteError: return "remote process exited or there was a network error";
    case ncclInProgress: return "NCCL operation in progress";
    default: return "unknown result code";
  }
}

const char* ncclGetLastError(ncclComm_t comm) { return comm ? comm->last_error.c_str() : g_last_error.c_str(); }

ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
  int init = 0;
  MPI_Initialized(&init);
  if (!init) return fail(nullptr, ncclSystemError, "emulated NCCL bootstraps over MPI: call MPI_Init first");
  static int serial = 0;
  IdBody b{};
  std::memcpy(b.magic, kMagic, sizeof kMagic);
  MPI_Comm_rank(MPI_COMM_WORLD, &b.root_world_rank);
  b.serial = serial++;
  b.pid = static_cast<long>(getpid());
  std::memset(id->internal, 0, sizeof id->internal);
  std::memcpy(id->internal, &b, sizeof b);
  return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* out, int nranks, ncclUniqueId id, int rank) {
  IdBody b;
  std::memcpy(&b, id.internal, sizeof b);
  if (std::memcmp(b.magic, kMagic, sizeof kMagic) != 0)
    return fail(nullptr, ncclInvalidArgument, "ncclCommInitRank : the unique id was not made by ncclGetUniqueId");
  if (nranks < 1 || rank < 0 || rank >= nranks)
    return fail(nullptr, ncclInvalidArgument,
                "ncclCommInitRank : invalid rank " + std::to_string(rank) + " of " + std::to_string(nranks));
  int world_rank = 0, device = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  if (cudaGetDevice(&device) != cudaSuccess)
    return fail(nullptr, ncclUnhandledCudaError, "ncclCommInitRank : no current CUDA device");
  char host[MPI_MAX_PROCESSOR_NAME] = {};
  int host_len = 0;
  MPI_Get_processor_name(host, &host_len);

  // Rendezvous at the id's maker: (rank, world rank, device, host) in, the member list out.
  struct Member { int rank, world_rank, device; char host[MPI_MAX_PROCESSOR_NAME]; };
  Member me{rank, world_rank, device, {}};
  std::memcpy(me.host, host, sizeof host);
  const int tag = kTagInit + b.serial % 1000;
  std::vector<Member> members(nranks);
  if (world_rank == b.root_world_rank) {
    members[rank] = me;
    std::vector<char> seen(nranks, 0);
    seen[rank] = 1;
    for (int i = 1; i < nranks; ++i) {
      Member m;
      check_mpi(MPI_Recv(&m, sizeof m, MPI_BYTE, MPI_ANY_SOURCE, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE), "MPI_Recv");
      if (m.rank < 0 || m.rank >= nranks || seen[m.rank]) {
        emu::report("emulated NCCL: ncclCommInitRank: rank %d joined twice or is out of range", m.rank);
        continue;
      }
      seen[m.rank] = 1;
      members[m.rank] = m;
    }
    for (int i = 0; i < nranks; ++i)
      if (i != rank)
        check_mpi(MPI_Send(members.data(), nranks * sizeof(Member), MPI_BYTE, members[i].world_rank, tag,
                           MPI_COMM_WORLD),
                  "MPI_Send");
  } else {
    check_mpi(MPI_Send(&me, sizeof me, MPI_BYTE, b.root_world_rank, tag, MPI_COMM_WORLD), "MPI_Send");
    check_mpi(MPI_Recv(members.data(), nranks * sizeof(Member), MPI_BYTE, b.root_world_rank, tag, MPI_COMM_WORLD,
                       MPI_STATUS_IGNORE),
              "MPI_Recv");
  }
  MPI_Group world_group, group;
  MPI_Comm_group(MPI_COMM_WORLD, &world_group);
  std::vector<int> ranks(nranks);
  for (int i = 0; i < nranks; ++i) ranks[i] = members[i].world_rank;
  MPI_Group_incl(world_group, nranks, ranks.data(), &group);
  auto* c = new ncclComm;
  check_mpi(MPI_Comm_create_group(MPI_COMM_WORLD, group, tag, &c->mpi), "MPI_Comm_create_group");
  MPI_Group_free(&group);
  MPI_Group_free(&world_group);
  MPI_Comm_set_errhandler(c->mpi, MPI_ERRORS_RETURN);
  c->rank = rank;
  c->size = nranks;
  c->device = device;
  // Every member sees the same list, so every member fails alike.
  for (int i = 0; i < nranks; ++i)
    for (int j = i + 1; j < nranks; ++j)
      if (members[i].device == members[j].device && std::strcmp(members[i].host, members[j].host) == 0) {
        MPI_Comm_free(&c->mpi);
        delete c;
        return fail(nullptr, ncclInvalidUsage,
                    "Duplicate GPU detected : rank " + std::to_string(i) + " and rank " + std::to_string(j) +
                        " both on CUDA device " + std::to_string(members[i].device));
      }
  *out = c;
  return ncclSuccess;
}

ncclResult_t ncclCommSplit(ncclComm_t comm, int color, int key, ncclComm_t* newcomm, ncclConfig_t*) {
  if (ncclResult_t r = check_comm(comm, "ncclCommSplit")) return r;
  MPI_Comm child;
  check_mpi(MPI_Comm_split(comm->mpi, color == NCCL_SPLIT_NOCOLOR ? MPI_UNDEFINED : color, key, &child),
            "MPI_Comm_split");
  *newcomm = nullptr;
  if (child == MPI_COMM_NULL) return ncclSuccess;
  auto* c = new ncclComm;
  c->mpi = child;
  MPI_Comm_set_errhandler(c->mpi, MPI_ERRORS_RETURN);
  MPI_Comm_rank(child, &c->rank);
  MPI_Comm_size(child, &c->size);
  c->device = comm->device;
  *newcomm = c;
  return ncclSuccess;
}

ncclResult_t ncclCommFinalize(ncclComm_t comm) { return check_comm(comm, "ncclCommFinalize"); }

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  if (!comm) return ncclSuccess;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm->mpi != MPI_COMM_NULL) MPI_Comm_free(&comm->mpi);
  delete comm;
  return ncclSuccess;
}

ncclResult_t ncclCommAbort(ncclComm_t comm) { return ncclCommDestroy(comm); }

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* async) {
  if (ncclResult_t r = check_comm(comm, "ncclCommGetAsyncError")) return r;
  *async = ncclSuccess;  // every operation has completed, and failed synchronously if it failed
  return ncclSuccess;
}

ncclResult_t ncclCommCount(const ncclComm_t comm, int* count) {
  if (ncclResult_t r = check_comm(comm, "ncclCommCount")) return r;
  *count = comm->size;
  return ncclSuccess;
}

ncclResult_t ncclCommCuDevice(const ncclComm_t comm, int* device) {
  if (ncclResult_t r = check_comm(comm, "ncclCommCuDevice")) return r;
  *device = comm->device;
  return ncclSuccess;
}

ncclResult_t ncclCommUserRank(const ncclComm_t comm, int* rank) {
  if (ncclResult_t r = check_comm(comm, "ncclCommUserRank")) return r;
  *rank = comm->rank;
  return ncclSuccess;
}

ncclResult_t ncclGroupStart() {
  ++g_group_depth;
  return ncclSuccess;
}

ncclResult_t ncclGroupEnd() {
  if (g_group_depth == 0) return fail(nullptr, ncclInvalidUsage, "ncclGroupEnd: not in a group call.");
  if (--g_group_depth > 0) return ncclSuccess;
  return end_group();
}

ncclResult_t ncclSend(const void* buf, size_t count, ncclDataType_t t, int peer, ncclComm_t comm, cudaStream_t s) {
  return enqueue_p2p(P2p{comm, true, const_cast<void*>(buf), 0, peer}, "ncclSend", t, count, s);
}

ncclResult_t ncclRecv(void* buf, size_t count, ncclDataType_t t, int peer, ncclComm_t comm, cudaStream_t s) {
  return enqueue_p2p(P2p{comm, false, buf, 0, peer}, "ncclRecv", t, count, s);
}

ncclResult_t ncclAllReduce(const void* send, void* recv, size_t count, ncclDataType_t t, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t s) {
  if (ncclResult_t r = check_comm(comm, "ncclAllReduce")) return r;
  emu::stream_flush(s);
  if (mpi_type(t) == MPI_DATATYPE_NULL || mpi_op(op) == MPI_OP_NULL)
    return fail(comm, ncclInvalidArgument, "ncclAllReduce : type or operation not emulated");
  const size_t bytes = count * type_size(t);
  if (ncclResult_t r = check_buffer(comm, send, bytes, "ncclAllReduce", "send")) return r;
  if (ncclResult_t r = check_buffer(comm, recv, bytes, "ncclAllReduce", "recv")) return r;
  return collective(comm, [=] {
    check_mpi(MPI_Allreduce(send == recv ? MPI_IN_PLACE : send, recv, static_cast<int>(count), mpi_type(t), mpi_op(op),
                            comm->mpi),
              "MPI_Allreduce");
    return ncclSuccess;
  });
}

ncclResult_t ncclBroadcast(const void* send, void* recv, size_t count, ncclDataType_t t, int root, ncclComm_t comm,
                           cudaStream_t s) {
  if (ncclResult_t r = check_comm(comm, "ncclBroadcast")) return r;
  emu::stream_flush(s);
  if (root < 0 || root >= comm->size) return fail(comm, ncclInvalidArgument, "ncclBroadcast : invalid root");
  const size_t bytes = count * type_size(t);
  if (comm->rank == root)
    if (ncclResult_t r = check_buffer(comm, send, bytes, "ncclBroadcast", "send")) return r;
  if (ncclResult_t r = check_buffer(comm, recv, bytes, "ncclBroadcast", "recv")) return r;
  return collective(comm, [=] {
    if (comm->rank == root && send != recv && bytes) std::memmove(recv, send, bytes);
    check_mpi(MPI_Bcast(recv, static_cast<int>(bytes), MPI_BYTE, root, comm->mpi), "MPI_Bcast");
    return ncclSuccess;
  });
}

ncclResult_t ncclAllGather(const void* send, void* recv, size_t count, ncclDataType_t t, ncclComm_t comm,
                           cudaStream_t s) {
  if (ncclResult_t r = check_comm(comm, "ncclAllGather")) return r;
  emu::stream_flush(s);
  const size_t bytes = count * type_size(t);
  if (ncclResult_t r = check_buffer(comm, send, bytes, "ncclAllGather", "send")) return r;
  if (ncclResult_t r = check_buffer(comm, recv, bytes * comm->size, "ncclAllGather", "recv")) return r;
  return collective(comm, [=] {
    auto* out = static_cast<char*>(recv);
    const bool in_place = send == out + comm->rank * bytes;
    check_mpi(MPI_Allgather(in_place ? MPI_IN_PLACE : send, static_cast<int>(bytes), MPI_BYTE, recv,
                            static_cast<int>(bytes), MPI_BYTE, comm->mpi),
              "MPI_Allgather");
    return ncclSuccess;
  });
}
