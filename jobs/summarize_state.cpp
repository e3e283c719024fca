// ringscan summarize --state (jobs/summarize_state.h).
#include "jobs/summarize_state.h"

#include <cstdio>

#include "comm/mpi_communicator.h"
#include "jobs/batch_job.h"
#include "jobs/state_answers.h"
#include "runtime/mpi_context.h"
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
  const int P = world->size();
  const JobSpec& spec = batch_job("summarize");
  check_collectively(*world, [&]() {
    check_job_options(spec, o, P);
    check_state_options(o);
  });
  StateSession s = open_state_session(session_options(o, "summarize"), *world);
  // One question per file of the state, in the state's order, named by its path.
  std::vector<StateQuestion> questions;
  for (const Json& f : s.about.at("files")) {
    const std::string path = f.at("path").get<std::string>();
    questions.push_back({path, file_prompt(o.prompt_template, path)});
  }
  StateAnswersOptions a = answers_options(o, "summarize", "file(s)", "prompt");
  a.identity_extra = {{"prompt_template", o.prompt_template}};
  a.attributes_extra = {{"prompt_template", o.prompt_template}};
  return answer_into_store(s, *world, questions, a);
}

}  // namespace ringscan
