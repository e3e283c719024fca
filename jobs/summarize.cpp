// ringscan summarize: generate a summary of each document after a
// (sequence-parallel when long) prefill; per document the generated ids, text,
// finish reason, token counts and timing go to the HDF5 file's /documents/extra.
#include "jobs/job_spec.h"

namespace ringscan {
namespace {
JobSpec summarize_job() {
  JobSpec spec{"summarize", "ringscan summarize: generate a summary of each document, into HDF5",
               "generate a summary of each document (sequence-parallel prefill for long ones), into HDF5", {}};
  spec.want.generate = true;
  return spec;
}
}  // namespace
RINGSCAN_BATCH_JOB(summarize_job());
}  // namespace ringscan
