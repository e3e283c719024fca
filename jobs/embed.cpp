// ringscan embed: one vector per document: the mean of its final hidden
// states and the last token's, both float32.
#include "cli/command.h"
#include "jobs/batch_job.h"

namespace ringscan {
namespace {
int run_embed(int argc, char** argv) {
  JobSpec spec{"embed", "ringscan embed: document embeddings (mean and last hidden state), into HDF5", {}};
  spec.want.embeddings = true;
  return run_batch_job(spec, argc, argv);
}
}  // namespace
RINGSCAN_COMMAND("embed", "document embeddings (mean and last final hidden state), into HDF5", run_embed);
}  // namespace ringscan
