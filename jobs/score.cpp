// ringscan score: per-token log-probabilities of each next token, per-document
// NLL sum / mean / perplexity, and per-file perplexity in codebase mode.
#include "jobs/job_spec.h"

namespace ringscan {
namespace {
JobSpec score_job() {
  JobSpec spec{"score", "ringscan score: per-token log-probs and perplexity of documents, into HDF5",
               "per-token log-probs and perplexity of files or codebases, into HDF5", {}};
  spec.want.logprobs = true;
  return spec;
}
}  // namespace
RINGSCAN_BATCH_JOB(score_job());
}  // namespace ringscan
