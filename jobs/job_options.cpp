#include "jobs/job_options.h"

#include <cmath>
#include <cstdio>

#include "runtime/mpi_context.h"
#include "util/error.h"

namespace ringscan {

namespace {
std::string number_text(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}
}  // namespace

void check_job_options(const JobSpec& spec, const JobOptions& o, int ranks) {
  check_sp_option(o.sp, ranks);
  if (o.max_tokens < 0) throw Error("--max-tokens must be >= 0");
  if (o.window < 0) throw Error("--window must be >= 0 (0: no window), got " + std::to_string(o.window));
  if (o.window == 0 && o.stride != 0) throw Error("--stride " + std::to_string(o.stride) + " needs --window");
  if (o.window > 0 && !(o.stride >= 1 && o.stride <= o.window))
    throw Error("--stride must be between 1 and --window " + std::to_string(o.window) + ", got " + std::to_string(o.stride));
  if (o.window > 0 && !spec.want.logprobs) throw Error("--window applies to scoring (ringscan score) only");
  if (o.threads < 0) throw Error("--threads must be >= 0 (0: OMP_NUM_THREADS, else every core)");
  // Comparisons written so that NaN fails them: a NaN option would pass "< 0" checks.
  if (!(std::isfinite(o.memory_gib) && o.memory_gib >= 0))
    throw Error("--memory-per-rank must be a finite number of GiB >= 0 (0: the default), got " + number_text(o.memory_gib));
  check_progress_interval(o.progress_interval);
  if (!spec.want.generate) return;
  if (o.prefill_chunk < 0) throw Error("--prefill-chunk must be >= 0 tokens (0: each prompt whole), got " + std::to_string(o.prefill_chunk));
  check_decode_options(o.max_new_tokens, o.batch, o.sampling);
}

void check_progress_interval(double seconds) {
  if (!(std::isfinite(seconds) && seconds > 0))
    throw Error("--progress-interval must be a finite number of seconds > 0, got " + number_text(seconds));
}

void check_decode_options(int64_t max_new_tokens, int batch, const kernels::SamplingParams& sampling) {
  if (max_new_tokens < 1) throw Error("--max-new-tokens must be at least 1");
  if (batch < 1) throw Error("--batch must be at least 1");
  const kernels::SamplingParams& o = sampling;
  if (!(std::isfinite(o.temperature) && o.temperature >= 0))
    throw Error("--temperature must be a finite number >= 0 (0: greedy), got " + number_text(o.temperature));
  if (!(std::isfinite(o.top_p) && o.top_p > 0 && o.top_p <= 1))
    throw Error("--top-p must be a number in (0, 1] (1: no limit), got " + number_text(o.top_p));
  if (o.top_k < 0) throw Error("--top-k must be >= 0 (0: no limit)");
}

}  // namespace ringscan
