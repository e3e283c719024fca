#include "jobs/run_identity.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "io/file_digest.h"

namespace ringscan {

Json run_identity(const JobSpec& spec, const JobOptions& o, const ModelConfig& c, const Tokenizer& tok,
                  const Engine& engine, const std::string& weights_sha256) {
  Json id = Json{{"job", spec.name},          {"model_config", c.raw},      {"tokenizer_sha256", tok.hash()},
              {"weights_sha256", weights_sha256},
              {"engine", engine.on_gpu() ? "cuda" : "cpu"},
              {"inputs", o.inputs},        {"include", o.include},       {"exclude", o.exclude},
              {"gitignore", !o.no_gitignore}, {"mode", o.mode},          {"max_tokens", o.max_tokens},
              {"input_format", o.input_format}, {"jsonl_id", o.jsonl_id}, {"jsonl_text", o.jsonl_text},
              {"generation", spec.want.generate ? Json{{"prompt_file", o.prompt.prompt_file}, {"system", o.prompt.system},
                                                      {"question", o.prompt.question},
                                                      {"chat_template", !o.prompt.no_chat_template},
                                                      {"max_new_tokens", o.max_new_tokens},
                                                      {"temperature", o.sampling.temperature},
                                                      {"top_k", o.sampling.top_k}, {"top_p", o.sampling.top_p},
                                                      {"seed", o.sampling.seed}, {"ignore_eos", o.ignore_eos}}
                                                : Json()}};
  // Only when set, so that the identity of runs without a window is what it was.
  if (o.window > 0) id["window"] = Json{{"window", o.window}, {"stride", o.stride}};
  return id;
}

std::string weights_sha256(const Model& model, bool quiet, const std::string& job) {
  const std::string& dir = model.checkpoint().dir();
  std::vector<std::string> names;
  for (const std::string& path : model.checkpoint().file_paths())
    names.push_back(path.rfind(dir + "/", 0) == 0 ? path.substr(dir.size() + 1) : path);
  auto t0 = std::chrono::steady_clock::now();
  io::FolderDigest digest = io::folder_sha256(dir, names, io::default_digest_caches(dir));
  if (!quiet && !digest.hashed.empty())
    std::fprintf(stderr, "ringscan %s: hashed the weights of %s (%zu file(s), %.1fs) for the run identity; %s\n",
                 job.c_str(), dir.c_str(), digest.hashed.size(),
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                 digest.cache_written.empty() ? "no writable cache, they will be hashed again next time"
                                              : ("cached in " + digest.cache_written).c_str());
  return digest.sha256;
}

void add_slurm_job(Json& attributes) {
  for (const auto& [key, var] : {std::pair{"slurm_job_id", "SLURM_JOB_ID"},
                                 std::pair{"slurm_array_task_id", "SLURM_ARRAY_TASK_ID"},
                                 std::pair{"slurm_nodelist", "SLURM_JOB_NODELIST"}})
    if (const char* v = std::getenv(var)) attributes[key] = v;
}

}  // namespace ringscan
