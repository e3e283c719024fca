// ringscan summarize --state (jobs/summarize_state.h).
#include "jobs/summarize_state.h"

#include <cstdio>

#include "comm/mpi_communicator.h"
#include "io/result_store.h"
#include "jobs/batch_job.h"
#include "jobs/result_rows.h"
#include "jobs/state_session.h"
#include "runtime/mpi_context.h"
#include "util/build_info.h"
#include "util/error.h"

namespace ringscan {

namespace {

// Options that shape a batch run's documents or prompt: the state fixed those at prefill.
void check_state_options(const JobOptions& o) {
  auto refuse = [](const std::string& opt) {
    throw Error(opt + " does not apply with --state: the saved state fixes the document and its prompt "
                      "(ringscan prefill's options)");
  };
  if (!o.inputs.empty()) refuse("--input");
  if (!o.prompt.prompt_file.empty()) refuse("--prompt-file");
  if (!o.prompt.question.empty()) refuse("--question");
  if (!o.prompt.system.empty()) refuse("--system");
  if (o.prompt.no_chat_template) refuse("--no-chat-template");
  if (o.max_tokens != 0) refuse("--max-tokens");
  if (o.out.empty()) throw Error("summarize --state needs --out FILE.h5");
  file_prompt(o.prompt_template, "");  // has {file}
}

}  // namespace

std::string file_prompt(const std::string& tpl, const std::string& path) {
  const std::string mark = "{file}";
  if (tpl.find(mark) == std::string::npos)
    throw Error("--prompt-template \"" + tpl + "\" has no \"{file}\" (where each file's path goes)");
  std::string out = tpl;
  for (size_t at = out.find(mark); at != std::string::npos; at = out.find(mark, at + path.size()))
    out.replace(at, mark.size(), path);
  return out;
}

int run_summarize_state(const JobOptions& o) {
  auto world = comm::MpiCommunicator::create();
  const int me = world->rank(), P = world->size();
  const JobSpec& spec = batch_job("summarize");
  check_collectively(*world, [&]() {
    check_job_options(spec, o, P);
    check_state_options(o);
  });
  StateSession s = open_state_session(
      {"summarize", o.state, o.model_dir, o.device, o.comm, o.gemm_inputs, o.threads, o.quiet}, *world);
  const Engine& engine = *s.engine;

  // One document per file of the state, in the state's order, named by its path.
  const Json& files = s.about.at("files");
  std::vector<std::string> names;
  for (const Json& f : files) names.push_back(f.at("path").get<std::string>());
  // What makes results differ: the state (its prefix ids and weights), the prompt, the sampling.
  Json identity = {{"job", "summarize"},
                         {"state_ids_sha256", s.manifest.at("ids_file").at("sha256")},
                         {"weights_sha256", s.about.at("weights_sha256")},
                         {"tokenizer_sha256", s.about.at("tokenizer_sha256")},
                         {"model_config", s.model->config().raw},
                         {"engine", engine.on_gpu() ? "cuda" : "cpu"},
                         {"question_template", s.about.at("question_template")},
                         {"generation",
                          {{"prompt_template", o.prompt_template},
                           {"max_new_tokens", o.max_new_tokens},
                           {"temperature", o.sampling.temperature},
                           {"top_k", o.sampling.top_k},
                           {"top_p", o.sampling.top_p},
                           {"seed", o.sampling.seed},
                           {"ignore_eos", o.ignore_eos}}}};
  // The GPU engine's GEMM inputs change the results; only set there, so a CPU run's identity is what it was.
  if (engine.on_gpu()) identity["gemm_inputs"] = engine.gemm_inputs();
  std::unique_ptr<io::ResultStore> store;
  check_collectively(*world, [&]() {
    store = io::ResultStore::open(o.out, identity, o.overwrite, names, MPI_COMM_WORLD, {},
                                  Json{{"model_dir", s.model_dir}, {"state", o.state}}, o.repair);
  });
  if (me == 0 && !o.quiet) std::fprintf(stderr, "ringscan summarize: %s\n", store->summary().c_str());
  if (store->already_complete()) return store->status_counts().failed + store->status_counts().skipped == 0
                                            ? 0
                                            : kExitSomeDocumentsNotOk;

  // The files not done by an earlier attempt, each a question against the state.
  std::vector<int64_t> todo;
  std::vector<std::string> prompts;
  std::vector<std::vector<int32_t>> own;
  check_collectively(*world, [&]() {
    for (size_t i = 0; i < names.size(); ++i) {
      if (store->is_completed(i)) continue;
      todo.push_back(static_cast<int64_t>(i));
      prompts.push_back(file_prompt(o.prompt_template, names[i]));
      own.push_back(question_ids(s, prompts.back()));
    }
  });
  DecodeTiming timing;
  const int64_t L = s.loaded.layout.length;
  std::vector<GenerationResult> results =
      decode_questions(s, *world, own, {o.max_new_tokens, o.batch, o.sampling, o.ignore_eos}, &timing);
  const double seconds = timing.seconds;

  int64_t generated = 0;
  check_collectively(*world, [&]() {
    for (const GenerationResult& g : results) {
      const int64_t d = todo.at(g.id);
      generated += static_cast<int64_t>(g.tokens.size());
      if (me != 0) continue;  // rank 0 stores every row
      io::Document doc;
      doc.name = names[d];
      io::DocumentResult r = generation_result(d, doc, s.about.value("truncated", false), g, *s.tok);
      r.extra["prompt"] = prompts[g.id];
      r.extra["prompt_tokens"] = L + static_cast<int64_t>(own[g.id].size());
      r.extra["route"] = "saved_state";
      r.extra["ranks"] = P;
      store->add(std::move(r));
    }
    store->flush();
  });
  const Json attributes = {{"job", "summarize"},
                           {"command_line", o.command_line},
                           {"ranks", P},
                           {"device", engine.label()},
                           {"gemm_inputs", engine.gemm_inputs()},
                           {"comm", engine.comm_backend()},
                           {"model_dir", s.model_dir},
                           {"model_config", s.model->config().raw.dump()},
                           {"tokenizer_hash", s.tok->hash()},
                           {"ringscan_version", ringscan_version()},
                           {"state", o.state},
                           {"state_about", s.about},
                           {"prefix_tokens", L},
                           {"state_ranks", s.loaded.saved_ranks},
                           {"prompt_template", o.prompt_template}};
  check_collectively(*world, [&]() { store->finalize(attributes); });
  if (me == 0 && !o.quiet)
    std::fprintf(stderr,
                 "ringscan summarize: %zu file(s) against the state's %lld-token prefix, %lld tokens generated in "
                 "%.2fs on %s (%.1f tokens/s); %lld prefill tokens avoided; %s\n",
                 todo.size(), (long long)L, (long long)generated, seconds, engine.label().c_str(),
                 generated / std::max(seconds, 1e-9),
                 (long long)(L * std::max<int64_t>(0, static_cast<int64_t>(todo.size()) - 1)),
                 store->summary().c_str());
  const io::ResultStore::StatusCounts& n = store->status_counts();
  return n.failed + n.skipped == 0 ? 0 : kExitSomeDocumentsNotOk;
}

}  // namespace ringscan
