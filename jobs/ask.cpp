// ringscan ask (jobs/ask.h).
#include "jobs/ask.h"

#include <map>
#include <sstream>

#include "jobs/job_options.h"
#include "jobs/state_answers.h"
#include "runtime/mpi_context.h"
#include "util/error.h"

namespace ringscan {

namespace {

std::vector<StateQuestion> read_questions(const std::string& path) {
  std::istringstream in(read_text_file(path));
  std::vector<StateQuestion> out;
  std::map<std::string, int64_t> line_of;  // id -> the line that named it first
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + " line " + std::to_string(n);
    Json j;
    try {
      j = Json::parse(line);
    } catch (const std::exception&) {
      throw Error(where + " is not a JSON object");
    }
    if (!j.is_object() || !j.contains("question") || !j["question"].is_string())
      throw Error(where + " has no \"question\" string (each line: {\"question\": \"...\", \"id\": \"...\"})");
    if (j.contains("id") && !j["id"].is_string()) throw Error(where + ": \"id\" must be a string");
    const std::string id = j.value("id", std::to_string(n));
    // The id names the answer's row (and what a rerun resumes): two rows of one name
    // could not be told apart.
    if (auto [it, fresh] = line_of.emplace(id, n); !fresh)
      throw Error(where + " repeats the id \"" + id + "\" of line " + std::to_string(it->second) +
                  " (each question needs its own id)");
    out.push_back({id, j["question"].get<std::string>()});
  }
  if (out.empty()) throw Error(path + " holds no questions (one JSON object per line)");
  return out;
}

}  // namespace

int run_ask(const AskOptions& o, comm::Communicator& world) {
  std::vector<StateQuestion> questions;
  check_collectively(world, [&]() {
    if (o.state.empty() || o.questions.empty() || o.out.empty())
      throw Error("ask needs --state DIR, --questions FILE.jsonl and --out FILE.h5");
    check_decode_options(o.max_new_tokens, o.batch, o.sampling);
    check_progress_interval(o.progress_interval);
    if (o.threads < 0) throw Error("--threads must be >= 0 (0: OMP_NUM_THREADS, else every core)");
    questions = read_questions(o.questions);
  });
  StateSession session = open_state_session(session_options(o, "ask"), world);
  StateAnswersOptions a = answers_options(o, "ask", "question(s)", "question");
  a.attributes_extra = {{"questions", o.questions}};
  return answer_into_store(session, world, questions, a);
}

}  // namespace ringscan
