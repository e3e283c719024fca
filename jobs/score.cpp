// ringscan score: per-token log-probabilities of each next token, per-document
// NLL sum / mean / perplexity, and per-file perplexity in codebase mode.
#include "cli/command.h"
#include "jobs/batch_job.h"

namespace ringscan {
namespace {
int run_score(int argc, char** argv) {
  JobSpec spec{"score", "ringscan score: per-token log-probs and perplexity of documents, into HDF5", {}};
  spec.want.logprobs = true;
  return run_batch_job(spec, argc, argv);
}
}  // namespace
RINGSCAN_COMMAND("score", "per-token log-probs and perplexity of files or codebases, into HDF5", run_score);
}  // namespace ringscan
