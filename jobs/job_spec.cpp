#include "jobs/job_spec.h"

#include "util/error.h"

namespace ringscan {

namespace {
std::vector<JobSpec>& registry() {
  static std::vector<JobSpec> jobs;
  return jobs;
}
}  // namespace

const std::vector<JobSpec>& batch_jobs() { return registry(); }

const JobSpec& batch_job(const std::string& name) {
  for (const JobSpec& j : registry())
    if (j.name == name) return j;
  throw Error("no batch job named \"" + name + "\"");
}

BatchJobRegistrar::BatchJobRegistrar(JobSpec spec) { registry().push_back(std::move(spec)); }

}  // namespace ringscan
