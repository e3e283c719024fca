#include "jobs/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <thread>

namespace ringscan {

std::string duration_text(double seconds) {
  char buf[48];
  if (!(seconds >= 0)) seconds = 0;
  if (seconds < 59.5) {
    std::snprintf(buf, sizeof buf, "%.0fs", seconds);
    return buf;
  }
  const long long s = std::llround(seconds);
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  return buf;
}

Progress::Progress(std::string job, int64_t total_docs, int64_t total_positions, bool enabled, double interval_s)
    : job_(std::move(job)), total_docs_(total_docs), total_positions_(total_positions), enabled_(enabled),
      tty_(isatty(STDERR_FILENO)), interval_(tty_ ? 0.2 : interval_s) {
  start_ = last_ = std::chrono::steady_clock::now();
}

void Progress::update(const ProgressCounts& c, bool force) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (!force && std::chrono::duration<double>(now - last_).count() < interval_) return;
  last_ = now;
  print(c, false);
}

void Progress::finish(const ProgressCounts& c) {
  if (enabled_) print(c, true);
}

void Progress::print(const ProgressCounts& c, bool final) {
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const int64_t total = std::max<int64_t>(total_positions_ - c.unused, 0);
  const int64_t done = std::min(c.positions, total);
  const double rate = s > 0 ? done / s : 0;
  const double eta = rate > 0 && total > done ? (total - done) / rate : 0;
  const double frac = total > 0 ? static_cast<double>(done) / total : 1.0;
  const std::string eta_text = rate > 0 || final ? duration_text(final ? s : eta) : "?";
  if (tty_) {
    const int width = 30, filled = static_cast<int>(frac * width + 0.5);
    std::string bar(filled, '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r%s [%s] %lld/%lld docs  %.0f tok/s  %s %s   %s", job_.c_str(), bar.c_str(),
                 (long long)c.docs, (long long)total_docs_, rate, final ? "took" : "ETA", eta_text.c_str(),
                 final ? "\n" : "");
  } else {
    std::fprintf(stderr, "ringscan %s: %lld/%lld documents, %lld/%lld tokens (%.0f%%), %.0f tokens/s, %s %s\n",
                 job_.c_str(), (long long)c.docs, (long long)total_docs_, (long long)done, (long long)total,
                 100 * frac, rate, final ? "took" : "ETA", eta_text.c_str());
  }
  std::fflush(stderr);
}

namespace {
constexpr int kUpdateTag = 1, kFinalTag = 2;
constexpr int kCounts = 3;
}  // namespace

ProgressRelay::ProgressRelay() {
  MPI_Comm_dup(MPI_COMM_WORLD, &comm_);  // its own messages never meet the jobs' others
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  latest_.assign(kCounts * size_, 0);
  last_sent_ = std::chrono::steady_clock::now();
}

ProgressRelay::~ProgressRelay() {
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

void ProgressRelay::report(const ProgressCounts& mine) {
  if (rank_ == 0) {
    latest_[0] = mine.docs, latest_[1] = mine.positions, latest_[2] = mine.unused;
    return;
  }
  int done = 1;
  if (pending_ != MPI_REQUEST_NULL) MPI_Test(&pending_, &done, MPI_STATUS_IGNORE);
  auto now = std::chrono::steady_clock::now();
  if (!done || std::chrono::duration<double>(now - last_sent_).count() < 1.0) return;
  sending_[0] = mine.docs, sending_[1] = mine.positions, sending_[2] = mine.unused;
  MPI_Isend(sending_, kCounts, MPI_INT64_T, 0, kUpdateTag, comm_, &pending_);
  last_sent_ = now;
}

void ProgressRelay::receive(const MPI_Status& st) {
  MPI_Recv(&latest_[kCounts * st.MPI_SOURCE], kCounts, MPI_INT64_T, st.MPI_SOURCE, st.MPI_TAG, comm_,
           MPI_STATUS_IGNORE);
}

ProgressCounts ProgressRelay::totals() {
  if (rank_ == 0) {
    int flag = 1;
    while (flag) {
      MPI_Status st;
      MPI_Iprobe(MPI_ANY_SOURCE, kUpdateTag, comm_, &flag, &st);
      if (flag) receive(st);
    }
  }
  ProgressCounts t;
  for (int r = 0; r < size_; ++r)
    t.docs += latest_[kCounts * r], t.positions += latest_[kCounts * r + 1], t.unused += latest_[kCounts * r + 2];
  return t;
}

void ProgressRelay::finish(const ProgressCounts& mine,
                           const std::function<void(const ProgressCounts&)>& while_waiting) {
  if (rank_ != 0) {
    if (pending_ != MPI_REQUEST_NULL) MPI_Wait(&pending_, MPI_STATUS_IGNORE);
    int64_t final_counts[kCounts] = {mine.docs, mine.positions, mine.unused};
    MPI_Send(final_counts, kCounts, MPI_INT64_T, 0, kFinalTag, comm_);
    return;
  }
  latest_[0] = mine.docs, latest_[1] = mine.positions, latest_[2] = mine.unused;
  // Updates may still be queued ahead of a rank's final message: take them all. While
  // the others work, rank 0 keeps the progress line going (polling, not blocked).
  for (int finals = 1; finals < size_;) {
    MPI_Status st;
    int flag = 0;
    MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm_, &flag, &st);
    if (!flag) {
      while_waiting(totals());
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    receive(st);
    finals += st.MPI_TAG == kFinalTag;
  }
}

}  // namespace ringscan
