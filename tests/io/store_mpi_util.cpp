#include "store_mpi_util.h"

#include <gtest/gtest.h>

#include "io/fs_util.h"
#include "util/error.h"

namespace ringscan::io::test::mpi {

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

int world_size() {
  int s = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}

std::string bcast_string(std::string s) {
  uint64_t n = s.size();
  MPI_Bcast(&n, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
  s.resize(n);
  MPI_Bcast(s.data(), int(n), MPI_CHAR, 0, MPI_COMM_WORLD);
  return s;
}

SharedDir::SharedDir() {
  if (world_rank() == 0) dir_ = std::make_unique<TempDir>("store");
  path_ = bcast_string(dir_ ? dir_->path() : "");
}

SharedDir::~SharedDir() { MPI_Barrier(MPI_COMM_WORLD); }

std::unique_ptr<ResultStore> open_store(const std::string& out, uint64_t n, const Json& identity, bool overwrite,
                                        MPI_Comm comm) {
  return ResultStore::open(out, identity, overwrite, fixture_names(n), comm);
}

Json attributes() {
  Json a = fixture_attributes();
  a["ranks"] = world_size();
  return a;
}

void finalize(ResultStore& s) { s.finalize(attributes(), fixture_discovery_skips()); }

void add_owned(ResultStore& s, uint64_t first, uint64_t last, const std::function<int(uint64_t)>& owner, int rank,
               int flush_every) {
  int since = 0;
  for (uint64_t i = first; i < last; ++i) {
    if (owner(i) != rank || s.is_completed(i)) continue;
    s.add(fixture_result(i));
    if (++since == flush_every) {
      s.flush();
      since = 0;
    }
  }
  s.flush();
}

std::string agreed_error(const std::function<void()>& fn) {
  std::string message;
  try {
    fn();
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    message = e.what();
  }
  uint64_t h = fnv1a64(message), lo = 0, hi = 0;
  MPI_Allreduce(&h, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&h, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
  EXPECT_EQ(lo, hi) << "ranks reported different errors; this rank: " << message;
  return message;
}

}  // namespace ringscan::io::test::mpi
