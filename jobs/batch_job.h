// The driver shared by the batch jobs (score, embed, summarize): document
// discovery and the run's identity, reading and tokenizing spread over ranks,
// scheduling (data parallel / sequence parallel), the per-document computation,
// results into the resumable result store, progress, the final file. A job is
// one file that declares what it computes (jobs/job_spec.h); the command line
// (src/cli/cmd_batch_jobs.cpp) turns argv into JobOptions and calls run_batch_job.
#pragma once
#include "jobs/job_options.h"
#include "jobs/job_spec.h"

namespace ringscan {

// Exit status (docs/cli.md, the same on every rank): 0 when every document is ok;
// kExitSomeDocumentsNotOk when the output was written but some document failed or was
// skipped; errors that stop the run (bad option, input, model, output) exit 1 (cli/main.cpp).
inline constexpr int kExitSomeDocumentsNotOk = 3;

// Runs the job on every rank of MPI_COMM_WORLD (collective; MPI must be started,
// runtime/mpi_context.h). Returns the exit status above. An error every rank
// agrees on (bad option or input, missing model, output in use) is thrown as
// CollectiveError on the lowest failing rank and ReportedElsewhere on the others;
// an error on one rank alone is a ringscan::Error (the caller aborts the others).
int run_batch_job(const JobSpec& spec, const JobOptions& options);

}  // namespace ringscan
