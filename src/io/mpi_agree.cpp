#include "io/mpi_agree.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <exception>
#include <vector>

#include "util/error.h"

namespace ringscan::io {

void check_mpi(int rc, const char* what, const char* context) {
  if (rc != MPI_SUCCESS) throw Error(std::string(context) + ": " + what + " failed");
}

void bcast_bytes(std::string& s, int root, MPI_Comm comm) {
  uint64_t n = s.size();
  check_mpi(MPI_Bcast(&n, 1, MPI_UINT64_T, root, comm), "MPI_Bcast");
  s.resize(n);
  // Chunks: MPI counts are int.
  for (uint64_t off = 0; off < n; off += uint64_t(INT_MAX)) {
    const int len = int(std::min<uint64_t>(n - off, uint64_t(INT_MAX)));
    check_mpi(MPI_Bcast(s.data() + off, len, MPI_CHAR, root, comm), "MPI_Bcast");
  }
}

std::string gather_bytes(const std::string& mine, int root, MPI_Comm comm) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  // Agreed first: a rank with too much to send must not leave the others in the gather.
  agree(comm, [&] {
    if (mine.size() > size_t(INT_MAX)) throw Error("result store: more than 2 GiB to gather from one rank");
  });
  const int n = int(mine.size());
  std::vector<int> counts(static_cast<size_t>(size)), displs(static_cast<size_t>(size));
  check_mpi(MPI_Gather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, root, comm), "MPI_Gather");
  std::string all;
  agree(comm, [&] {
    if (rank != root) return;
    uint64_t total = 0;
    for (int r = 0; r < size; ++r) {
      displs[size_t(r)] = int(total);
      total += uint64_t(counts[size_t(r)]);
    }
    if (total > uint64_t(INT_MAX)) throw Error("result store: more than 2 GiB to gather on one rank");
    all.resize(total);
  });
  check_mpi(MPI_Gatherv(mine.data(), n, MPI_CHAR, all.data(), counts.data(), displs.data(), MPI_CHAR, root, comm),
            "MPI_Gatherv");
  return all;
}

void agree(MPI_Comm comm, const std::function<void()>& fn) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  std::string message;
  int mine = INT_MAX;
  try {
    fn();
  } catch (const std::exception& e) {
    message = e.what();
    mine = rank;
  }
  int lowest = INT_MAX;
  check_mpi(MPI_Allreduce(&mine, &lowest, 1, MPI_INT, MPI_MIN, comm), "MPI_Allreduce");
  if (lowest == INT_MAX) return;
  bcast_bytes(message, lowest, comm);
  throw Error(message);
}

}  // namespace ringscan::io
