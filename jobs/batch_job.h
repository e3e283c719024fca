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

// Exit status (docs/cli.md, the same on every rank): 0 when every document is ok;
// kExitSomeDocumentsNotOk when the output was written but some document failed or was
// skipped; errors that stop the run (bad option, input, model, output) exit 1 (cli/main.cpp).
inline constexpr int kExitSomeDocumentsNotOk = 3;

int run_batch_job(const JobSpec& spec, int argc, char** argv);

}  // namespace ringscan
