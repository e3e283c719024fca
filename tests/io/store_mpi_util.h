// Helpers of the result-store tests that run under mpirun (every rank runs each test).
#pragma once
#include <mpi.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include "io/result_store.h"
#include "io_test_util.h"
#include "store_fixture.h"

namespace ringscan::io::test::mpi {

int world_rank();
int world_size();
std::string bcast_string(std::string s);  // from rank 0

// A scratch folder made by rank 0 and seen by all (one machine: /tmp is shared).
class SharedDir {
 public:
  SharedDir();
  ~SharedDir();
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::unique_ptr<TempDir> dir_;
  std::string path_;
};

std::unique_ptr<ResultStore> open_store(const std::string& out, uint64_t n, const Json& identity = fixture_identity(),
                                        bool overwrite = false, MPI_Comm comm = MPI_COMM_WORLD);

Json attributes();  // fixture_attributes() with this run's rank count
void finalize(ResultStore& s);

using Set = std::set<uint64_t>;

// Adds the documents `owner` gives to `rank` (and not done yet), flushing every few.
void add_owned(ResultStore& s, uint64_t first, uint64_t last, const std::function<int(uint64_t)>& owner, int rank,
               int flush_every = 2);

// Runs fn, which must throw ringscan::Error on every rank with the same message.
std::string agreed_error(const std::function<void()>& fn);

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace ringscan::io::test::mpi
