#include "jobs/progress.h"

#include <unistd.h>

#include <cstdio>

namespace ringscan {

Progress::Progress(std::string job, int64_t total_docs, int64_t total_tokens, bool enabled, double interval_s)
    : job_(std::move(job)), total_docs_(total_docs), total_tokens_(total_tokens), enabled_(enabled),
      tty_(isatty(STDERR_FILENO)), interval_(tty_ ? 0.2 : interval_s) {
  start_ = last_ = std::chrono::steady_clock::now();
}

void Progress::update(int64_t docs, int64_t tokens, bool force) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (!force && std::chrono::duration<double>(now - last_).count() < interval_) return;
  last_ = now;
  print(docs, tokens, false);
}

void Progress::finish(int64_t docs, int64_t tokens) {
  if (enabled_) print(docs, tokens, true);
}

void Progress::print(int64_t docs, int64_t tokens, bool final) {
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = s > 0 ? tokens / s : 0;
  const double eta = rate > 0 && total_tokens_ > tokens ? (total_tokens_ - tokens) / rate : 0;
  const double frac = total_tokens_ > 0 ? static_cast<double>(tokens) / total_tokens_ : 1.0;
  if (tty_) {
    const int width = 30, filled = static_cast<int>(frac * width + 0.5);
    std::string bar(filled, '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r%s [%s] %lld/%lld docs  %.0f tok/s  ETA %.0fs   %s", job_.c_str(), bar.c_str(),
                 (long long)docs, (long long)total_docs_, rate, eta, final ? "\n" : "");
  } else {
    std::fprintf(stderr, "ringscan %s: %lld/%lld documents, %lld/%lld tokens (%.0f%%), %.0f tokens/s, %s %.0fs\n",
                 job_.c_str(), (long long)docs, (long long)total_docs_, (long long)tokens, (long long)total_tokens_,
                 100 * frac, rate, final ? "took" : "ETA", final ? s : eta);
  }
  std::fflush(stderr);
}

namespace {
constexpr int kUpdateTag = 1, kFinalTag = 2;
}

ProgressRelay::ProgressRelay() {
  MPI_Comm_dup(MPI_COMM_WORLD, &comm_);  // its own messages never meet the jobs' others
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  latest_.assign(2 * size_, 0);
  last_sent_ = std::chrono::steady_clock::now();
}

ProgressRelay::~ProgressRelay() {
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

void ProgressRelay::report(int64_t docs, int64_t tokens) {
  if (rank_ == 0) {
    latest_[0] = docs, latest_[1] = tokens;
    return;
  }
  int done = 1;
  if (pending_ != MPI_REQUEST_NULL) MPI_Test(&pending_, &done, MPI_STATUS_IGNORE);
  auto now = std::chrono::steady_clock::now();
  if (!done || std::chrono::duration<double>(now - last_sent_).count() < 1.0) return;
  sending_[0] = docs, sending_[1] = tokens;
  MPI_Isend(sending_, 2, MPI_INT64_T, 0, kUpdateTag, comm_, &pending_);
  last_sent_ = now;
}

void ProgressRelay::totals(int64_t* docs, int64_t* tokens) {
  if (rank_ == 0) {
    int flag = 1;
    while (flag) {
      MPI_Status st;
      MPI_Iprobe(MPI_ANY_SOURCE, kUpdateTag, comm_, &flag, &st);
      if (flag) MPI_Recv(&latest_[2 * st.MPI_SOURCE], 2, MPI_INT64_T, st.MPI_SOURCE, kUpdateTag, comm_, MPI_STATUS_IGNORE);
    }
  }
  *docs = *tokens = 0;
  for (int r = 0; r < size_; ++r) *docs += latest_[2 * r], *tokens += latest_[2 * r + 1];
}

void ProgressRelay::finish(int64_t docs, int64_t tokens) {
  if (rank_ != 0) {
    if (pending_ != MPI_REQUEST_NULL) MPI_Wait(&pending_, MPI_STATUS_IGNORE);
    int64_t final_counts[2] = {docs, tokens};
    MPI_Send(final_counts, 2, MPI_INT64_T, 0, kFinalTag, comm_);
    return;
  }
  latest_[0] = docs, latest_[1] = tokens;
  // Updates may still be queued ahead of a rank's final message: take them all.
  for (int finals = 1; finals < size_;) {
    MPI_Status st;
    MPI_Probe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm_, &st);
    MPI_Recv(&latest_[2 * st.MPI_SOURCE], 2, MPI_INT64_T, st.MPI_SOURCE, st.MPI_TAG, comm_, MPI_STATUS_IGNORE);
    finals += st.MPI_TAG == kFinalTag;
  }
}

}  // namespace ringscan
