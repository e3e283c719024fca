#include "comm/mpi_session.h"

#include "comm/mpi_io_choice.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <cstdlib>
#include <exception>
#include <optional>

namespace ringscan::comm {

namespace {

bool mpi_running() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
}

// Only one error line per process, even if a second failure happens while aborting.
std::atomic<bool> g_aborting{false};

[[noreturn]] void print_and_abort(const std::string& line, int code) {
  if (code == 0) code = 1;
  if (!g_aborting.exchange(true)) {
    std::fprintf(stderr, "ringscan: error: %s\n", line.c_str());
    std::fflush(stderr);
  }
  if (mpi_running()) {
    // Let the launcher forward the sentence first: on MPI_Abort, MPICH's Hydra can stop
    // relaying this rank's output before reading it (under load the line was lost, 3 runs in 30).
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size > 1) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    MPI_Abort(MPI_COMM_WORLD, code);
  }
  std::_Exit(code);  // MPI_Abort does not return; without MPI there is nothing to stop but us
}

int world_rank_or(int fallback) {
  if (!mpi_running()) return fallback;
  int r = fallback;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

int world_size_or(int fallback) {
  if (!mpi_running()) return fallback;
  int s = fallback;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}

std::optional<int> env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < 0) return std::nullopt;
  return static_cast<int>(x);
}

}  // namespace

MpiSession::MpiSession(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return;
  prefer_romio_before_mpi_init();
  int provided = 0;
  if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    std::fprintf(stderr, "ringscan: error: MPI_Init_thread failed\n");
    std::exit(1);
  }
  owns_ = true;
  check_mpi(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  if (provided < MPI_THREAD_FUNNELED)
    fail_here("the MPI library provides thread level " + std::to_string(provided) +
              ", ringscan needs MPI_THREAD_FUNNELED");
}

MpiSession::~MpiSession() {
  if (!owns_ || !mpi_running()) return;
  if (std::uncaught_exceptions() > 0 && world_size() > 1)
    abort_all("an exception ended this rank while other ranks may still be communicating; stopping all ranks");
  MPI_Finalize();
}

int MpiSession::world_rank() const { return world_rank_or(0); }
int MpiSession::world_size() const { return world_size_or(1); }

void abort_all(const std::string& message, int code) {
  if (world_size_or(1) > 1)
    print_and_abort("rank " + std::to_string(world_rank_or(0)) + ": " + message, code);
  print_and_abort(message, code);
}

void fail_here(const std::string& what, int code) {
  print_and_abort("rank " + std::to_string(world_rank_or(0)) + " on " + host_name() + ": " + what, code);
}

void check_mpi(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) len = std::snprintf(text, sizeof text, "error code %d", rc);
  fail_here(std::string(call) + " failed: " + std::string(text, static_cast<std::size_t>(len)));
}

std::string host_name() {
  if (mpi_running()) {
    char name[MPI_MAX_PROCESSOR_NAME];
    int len = 0;
    if (MPI_Get_processor_name(name, &len) == MPI_SUCCESS) return std::string(name, static_cast<std::size_t>(len));
  }
  char name[256] = {0};
  if (gethostname(name, sizeof name - 1) == 0) return name;
  return "unknown-host";
}

int local_rank() {
  static const int cached = [] {
    // The node's own view (ranks sharing memory), whatever launched us: the
    // launchers' variables can describe another job step (mpirun inside an
    // allocation inherits the batch step's SLURM_LOCALID) or be missing.
    if (mpi_running()) {
      MPI_Comm node;
      check_mpi(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node),
                "MPI_Comm_split_type");
      int r = 0;
      check_mpi(MPI_Comm_rank(node, &r), "MPI_Comm_rank");
      check_mpi(MPI_Comm_free(&node), "MPI_Comm_free");
      return r;
    }
    if (auto v = env_int("OMPI_COMM_WORLD_LOCAL_RANK")) return *v;
    if (auto v = env_int("MPI_LOCALRANKID")) return *v;
    if (auto v = env_int("SLURM_LOCALID")) return *v;
    return 0;
  }();
  return cached;
}

int ranks_on_this_node() {
  if (!mpi_running()) return 1;
  MPI_Comm node;
  check_mpi(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node), "MPI_Comm_split_type");
  int n = 1;
  check_mpi(MPI_Comm_size(node, &n), "MPI_Comm_size");
  check_mpi(MPI_Comm_free(&node), "MPI_Comm_free");
  return n;
}

}  // namespace ringscan::comm
