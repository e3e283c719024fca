// ringscan summarize --state: a summary of each file of a saved prefill state
// (jobs/prefill_state.h), every file a question that forks the state: the
// --prompt-template with {file} replaced by the file's path, inside the state's
// question template (docs/state-files.md). All files decode together against
// the shared prefix (jobs/state_session.h); the results go to a summarize
// result file (docs/hdf5-schema.md): one /documents row per file, named by its
// path, with the generation in /documents/extra as summarize writes it,
// resumable like every batch job's.
#pragma once
#include <string>

#include "jobs/job_options.h"

namespace ringscan {

// The per-file prompt: `tpl` with every "{file}" replaced by `path`. Error when
// `tpl` has no "{file}".
std::string file_prompt(const std::string& tpl, const std::string& path);

// Collective over MPI_COMM_WORLD (MPI started); o.state set. Returns the exit
// status of run_batch_job (jobs/batch_job.h).
int run_summarize_state(const JobOptions& o);

}  // namespace ringscan
