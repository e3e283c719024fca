// What makes two runs' results the same: a rerun with a different identity
// must not resume into (or silently overwrite) an existing output.
#pragma once
#include <string>

#include "jobs/job_options.h"
#include "jobs/job_spec.h"
#include "model/model.h"
#include "runtime/engine.h"
#include "tokenizer/tokenizer.h"
#include "util/json_util.h"

namespace ringscan {

// The engine is part of it: GPU results (bf16 GEMM inputs) differ from the
// CPU's in the last digits, and one file must not mix them.
// Options that cannot change a result (--memory-per-rank, --sp, --layout, the number of
// ranks, progress, --overwrite, --repair) stay out of it, so that a rerun may change them.
Json run_identity(const JobSpec& spec, const JobOptions& o, const ModelConfig& c, const Tokenizer& tok,
                  const Engine& engine, const std::string& weights_sha256);

// Which Slurm job wrote a result file (slurm_job_id, slurm_array_task_id,
// slurm_nodelist from the environment, where set) added to its attributes: recorded
// only, never part of the run identity, so a resubmitted job (a new id) still resumes.
void add_slurm_job(Json& attributes);

// SHA-256 over the checkpoint's safetensors files, each file's digest cached by its
// size and mtime (io/file_digest.h): a checkpoint is read in full once.
std::string weights_sha256(const Model& model, bool quiet, const std::string& job);

}  // namespace ringscan
