// A one-process run of the result store, for tests that kill it at arbitrary moments
// (test_store_kill.cpp): io_store_probe OUT N SLEEP_US
// Opens OUT for N fixture documents, adds every document not done yet (flushing every 3,
// then sleeping SLEEP_US so that kills land between writes too), finalizes. Prints the
// store's summary lines; on an Error prints "ringscan: error: ..." and exits 3.
#include <mpi.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "comm/mpi_session.h"
#include "io/result_store.h"
#include "store_fixture.h"
#include "util/error.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: io_store_probe OUT N SLEEP_US\n");
    return 2;
  }
  ringscan::comm::MpiSession mpi(&argc, &argv);  // as ringscan's (its MPI-IO choice: comm/mpi_io_choice.h)
  int rc = 0;
  try {
    using namespace ringscan::io;
    const uint64_t n = std::strtoull(argv[2], nullptr, 10);
    const useconds_t pause = useconds_t(std::strtoul(argv[3], nullptr, 10));
    auto store_ptr = ResultStore::open(argv[1], test::fixture_identity(), false, test::fixture_names(n), MPI_COMM_WORLD);
    ResultStore& store = *store_ptr;
    std::printf("%s\n", store.summary().c_str());
    std::fflush(stdout);
    if (!store.already_complete()) {
      int since = 0;
      for (uint64_t i = 0; i < n; ++i) {
        if (store.is_completed(i)) continue;
        store.add(test::fixture_result(i));
        if (++since == 3) {
          store.flush();
          since = 0;
          usleep(pause);
        }
      }
      ringscan::Json attributes = test::fixture_attributes();
      attributes["ranks"] = 1;
      store.finalize(attributes, test::fixture_discovery_skips());
      std::printf("%s\n", store.summary().c_str());
    }
  } catch (const ringscan::Error& e) {
    std::fprintf(stderr, "ringscan: error: %s\n", e.what());
    rc = 3;
  }
  return rc;
}
