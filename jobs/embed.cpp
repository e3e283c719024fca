// ringscan embed: one vector per document: the mean of its final hidden
// states and the last token's, both float32.
#include "jobs/job_spec.h"

namespace ringscan {
namespace {
JobSpec embed_job() {
  JobSpec spec{"embed", "ringscan embed: document embeddings (mean and last hidden state), into HDF5",
               "document embeddings (mean and last final hidden state), into HDF5", {}};
  spec.want.embeddings = true;
  return spec;
}
}  // namespace
RINGSCAN_BATCH_JOB(embed_job());
}  // namespace ringscan
