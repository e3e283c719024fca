// What a batch job is: its name, its help, and what it computes per document.
// Each job file (jobs/score.cpp, jobs/embed.cpp, jobs/summarize.cpp) registers
// one spec with RINGSCAN_BATCH_JOB; the command line (src/cli) makes a
// subcommand of every registered job, and tests can look a job up by name.
#pragma once
#include <string>
#include <vector>

#include "runtime/document_values.h"

namespace ringscan {

struct JobSpec {
  std::string name;        // the subcommand
  std::string help_title;  // first line of --help
  std::string summary;     // its line in `ringscan --help`'s list of commands
  WantedOutputs want;
};

// Every registered job, in registration order (static initialisation of the job files).
const std::vector<JobSpec>& batch_jobs();
// The registered job of that name; throws ringscan::Error when there is none.
const JobSpec& batch_job(const std::string& name);

struct BatchJobRegistrar {
  explicit BatchJobRegistrar(JobSpec spec);
};

}  // namespace ringscan

#define RINGSCAN_BATCH_JOB_CAT2(a, b) a##b
#define RINGSCAN_BATCH_JOB_CAT(a, b) RINGSCAN_BATCH_JOB_CAT2(a, b)
#define RINGSCAN_BATCH_JOB(spec) \
  static ::ringscan::BatchJobRegistrar RINGSCAN_BATCH_JOB_CAT(ringscan_batch_job_, __LINE__)(spec)
