// The driver shared by the batch jobs (score, embed): options, document
// discovery, reading and tokenizing spread over ranks, scheduling (data
// parallel / sequence parallel), the per-document computation, results into
// the resumable result store, progress. A job is one file that declares what
// it computes (jobs/score.cpp, jobs/embed.cpp).
#pragma once
#include <string>

#include "runtime/document_values.h"

namespace ringscan {

struct JobSpec {
  std::string name;     // the subcommand
  std::string summary;  // first line of --help
  WantedOutputs want;
};

int run_batch_job(const JobSpec& spec, int argc, char** argv);

}  // namespace ringscan
