// Progress of a batch job, printed by rank 0 only: on a terminal, a bar with
// documents, tokens/s and ETA redrawn in place; otherwise one line per
// interval (logs of batch systems). --quiet prints nothing.
#pragma once
#include <mpi.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace ringscan {

class Progress {
 public:
  Progress(std::string job, int64_t total_docs, int64_t total_tokens, bool enabled, double interval_s = 10.0);
  // Counts are cumulative (documents and tokens finished so far, all ranks as far as this rank knows).
  void update(int64_t docs, int64_t tokens, bool force = false);
  void finish(int64_t docs, int64_t tokens);

 private:
  void print(int64_t docs, int64_t tokens, bool final);
  std::string job_;
  int64_t total_docs_, total_tokens_;
  bool enabled_, tty_;
  double interval_;
  std::chrono::steady_clock::time_point start_, last_;
};

// Brings every rank's counts of finished documents and tokens to rank 0 while
// ranks work independently (the data-parallel phase): other ranks post small
// non-blocking messages, at most one in flight and one a second; rank 0 picks
// them up whenever it polls. Construction and finish() are collective.
class ProgressRelay {
 public:
  ProgressRelay();
  ~ProgressRelay();
  ProgressRelay(const ProgressRelay&) = delete;
  ProgressRelay& operator=(const ProgressRelay&) = delete;

  // This rank's cumulative counts (other ranks: sent to rank 0 now and then).
  void report(int64_t docs, int64_t tokens);
  // Rank 0: the sum over ranks of the latest counts received (its own included).
  void totals(int64_t* docs, int64_t* tokens);
  // Collective: every rank's final counts reach rank 0; no message stays in flight.
  void finish(int64_t docs, int64_t tokens);

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  std::vector<int64_t> latest_;  // rank 0: [docs, tokens] per rank
  int64_t sending_[2] = {0, 0};
  MPI_Request pending_ = MPI_REQUEST_NULL;
  std::chrono::steady_clock::time_point last_sent_;
};

}  // namespace ringscan
