// ringscan ask (jobs/ask.h).
#include "jobs/ask.h"

#include <chrono>
#include <cstdio>
#include <sstream>

#include "jobs/ask_output.h"
#include "jobs/state_session.h"
#include "runtime/mpi_context.h"
#include "util/build_info.h"
#include "util/error.h"

namespace ringscan {

namespace {

struct Question {
  std::string id, text;
};

std::vector<Question> read_questions(const std::string& path) {
  std::istringstream in(read_text_file(path));
  std::vector<Question> out;
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
    out.push_back({j.value("id", std::to_string(n)), j["question"].get<std::string>()});
  }
  if (out.empty()) throw Error(path + " holds no questions (one JSON object per line)");
  return out;
}

}  // namespace

int run_ask(const AskOptions& o, comm::Communicator& world) {
  const int me = world.rank(), P = world.size();
  std::vector<Question> questions;
  check_collectively(world, [&]() {
    if (o.state.empty() || o.questions.empty() || o.out.empty())
      throw Error("ask needs --state DIR, --questions FILE.jsonl and --out FILE.h5");
    if (o.max_new_tokens < 1) throw Error("--max-new-tokens must be >= 1");
    if (o.batch < 1) throw Error("--batch must be >= 1");
    questions = read_questions(o.questions);
  });
  StateSession session = open_state_session(
      {"ask", o.state, o.model_dir, o.device, o.comm, o.gemm_inputs, o.threads, o.quiet}, world);
  const Engine& engine = *session.engine;
  const Json& about = session.about;
  const std::string& model_dir = session.model_dir;
  const std::string& weights = session.weights_sha256;
  Tokenizer* tok = session.tok.get();
  const int64_t L = session.loaded.layout.length;
  const int saved_ranks = session.loaded.saved_ranks;

  std::vector<std::vector<int32_t>> own(questions.size());
  check_collectively(world, [&]() {
    for (size_t i = 0; i < questions.size(); ++i) own[i] = question_ids(session, questions[i].text);
  });
  DecodeTiming timing;
  std::vector<GenerationResult> results =
      decode_questions(session, world, own, {o.max_new_tokens, o.batch, o.sampling, o.ignore_eos}, &timing);
  const double seconds = timing.seconds;

  int64_t generated = 0, own_tokens = 0;
  std::vector<AnswerRow> rows(questions.size());
  for (GenerationResult& r : results) {
    AnswerRow& a = rows.at(r.id);
    a.id = questions[r.id].id;
    a.question = questions[r.id].text;
    a.question_ids = own[r.id];
    a.answer_ids = r.tokens;
    a.text = tok->decode(r.tokens, /*skip_special=*/true);
    a.finish_reason = r.reason == StopReason::StopId ? "stop" : stop_reason_name(r.reason);
    a.first_token_seconds = r.first_token_seconds;
    a.decode_seconds = r.decode_seconds;
    generated += r.tokens.size();
    own_tokens += own[r.id].size();
  }
  const int64_t avoided = L * static_cast<int64_t>(questions.size() - 1);
  check_collectively(world, [&]() {
    if (me != 0) return;
    const Json attributes = {{"format_version", 1},
                             {"job", "ask"},
                             {"ringscan_version", ringscan_version()},
                             {"state", o.state},
                             {"state_about", about},
                             {"prefix_tokens", L},
                             {"state_ranks", saved_ranks},
                             {"ranks", P},
                             {"device", engine.label()},
                             {"gemm_inputs", engine.gemm_inputs()},
                             {"comm", engine.comm_backend()},
                             {"model_dir", model_dir},
                             {"weights_sha256", weights},
                             {"tokenizer_hash", tok->hash()},
                             {"max_new_tokens", o.max_new_tokens},
                             {"temperature", o.sampling.temperature},
                             {"seed", static_cast<int64_t>(o.sampling.seed)},
                             {"batch", o.batch},
                             {"seconds", seconds},
                             {"command_line", o.command_line}};
    write_answers_file(o.out, rows, attributes, o.overwrite);
    if (!o.quiet)
      std::fprintf(stderr,
                   "ringscan ask: %zu question(s), %lld own + %lld generated tokens in %.2fs on %s (cpu %.2fs on "
                   "rank 0, %.1f tokens/s); "
                   "the %lld-token prefix was run once instead of %zu times: %lld prefill tokens avoided; "
                   "answers in %s\n",
                   questions.size(), (long long)own_tokens, (long long)generated, seconds, engine.label().c_str(),
                   timing.cpu_seconds,
                   (own_tokens + generated) / std::max(seconds, 1e-9), (long long)L, questions.size(),
                   (long long)avoided, o.out.c_str());
  });
  return 0;
}

}  // namespace ringscan
