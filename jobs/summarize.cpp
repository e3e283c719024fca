// ringscan summarize: generate a summary of each document after a
// (sequence-parallel when long) prefill; per document the generated ids, text,
// finish reason, token counts and timing go to the HDF5 file's /documents/extra.
#include "cli/command.h"
#include "jobs/batch_job.h"

namespace ringscan {
namespace {
int run_summarize(int argc, char** argv) {
  JobSpec spec{"summarize", "ringscan summarize: generate a summary of each document, into HDF5", {}};
  spec.want.generate = true;
  return run_batch_job(spec, argc, argv);
}
}  // namespace
RINGSCAN_COMMAND("summarize", "generate a summary of each document (sequence-parallel prefill for long ones), into HDF5",
                 run_summarize);
}  // namespace ringscan
