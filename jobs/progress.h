// Progress of a batch job, printed by rank 0 only: on a terminal, a bar with
// documents, tokens/s and ETA redrawn in place; otherwise one line per
// interval (logs of batch systems). --quiet prints nothing.
//
// Work is counted in token positions (runtime/work_progress.h): a document's
// prompt tokens, and for summarize its generated tokens too. Summarize's total
// counts every document's --max-new-tokens until the document stops; what a
// stopped document did not generate is taken off the total (`unused`), so the
// ETA covers generation and shrinks when documents stop early.
#pragma once
#include <mpi.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace ringscan {

// Cumulative counts: documents finished, positions done (finished documents' and the
// work inside those still running), positions of the total that will not be done.
struct ProgressCounts {
  int64_t docs = 0;
  int64_t positions = 0;
  int64_t unused = 0;
};

// "42s" below a minute, "h:mm:ss" from a minute on ("0:01:05", "27:46:40").
std::string duration_text(double seconds);

class Progress {
 public:
  Progress(std::string job, int64_t total_docs, int64_t total_positions, bool enabled, double interval_s = 10.0);
  void update(const ProgressCounts& c, bool force = false);
  void finish(const ProgressCounts& c);

 private:
  void print(const ProgressCounts& c, bool final);
  std::string job_;
  int64_t total_docs_, total_positions_;
  bool enabled_, tty_;
  double interval_;
  std::chrono::steady_clock::time_point start_, last_;
};

// Brings every rank's counts to rank 0 while ranks work independently (the
// data-parallel phase): other ranks post small non-blocking messages, at most one
// in flight and one a second; rank 0 picks them up whenever it polls.
// Construction and finish() are collective.
class ProgressRelay {
 public:
  ProgressRelay();
  ~ProgressRelay();
  ProgressRelay(const ProgressRelay&) = delete;
  ProgressRelay& operator=(const ProgressRelay&) = delete;

  // This rank's cumulative counts (other ranks: sent to rank 0 now and then).
  void report(const ProgressCounts& mine);
  // Rank 0: the sum over ranks of the latest counts received (its own included).
  ProgressCounts totals();
  // Collective: every rank's final counts reach rank 0; no message stays in flight.
  // Rank 0 calls while_waiting with the totals so far while other ranks still work.
  void finish(const ProgressCounts& mine, const std::function<void(const ProgressCounts&)>& while_waiting);

 private:
  void receive(const MPI_Status& st);
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  std::vector<int64_t> latest_;  // rank 0: [docs, positions, unused] per rank
  int64_t sending_[3] = {0, 0, 0};
  MPI_Request pending_ = MPI_REQUEST_NULL;
  std::chrono::steady_clock::time_point last_sent_;
};

}  // namespace ringscan
