// Progress of a batch job, printed by rank 0 only: on a terminal, a bar with
// documents, tokens/s and ETA redrawn in place; otherwise one line per
// interval (logs of batch systems). --quiet prints nothing.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

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

}  // namespace ringscan
