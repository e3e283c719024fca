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

}  // namespace ringscan
