// ringscan ask (jobs/ask.h).
#include "jobs/ask.h"

#include <chrono>
#include <cstdio>
#include <sstream>

#include "jobs/ask_output.h"
#include "jobs/run_identity.h"
#include "kernels/blas_runtime.h"
#include "model/model.h"
#include "runtime/mpi_context.h"
#include "runtime/prefix_decode.h"
#include "runtime/saved_state.h"
#include "tokenizer/tokenizer.h"
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
  Json manifest, about;
  std::string model_dir;
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tok;
  std::vector<Question> questions;
  check_collectively(world, [&]() {
    if (o.state.empty() || o.questions.empty() || o.out.empty())
      throw Error("ask needs --state DIR, --questions FILE.jsonl and --out FILE.h5");
    if (o.device != "auto" && o.device != "cpu")
      throw Error("ask runs on the CPU engine only in this version: give --device cpu (or leave --device out)");
    if (o.max_new_tokens < 1) throw Error("--max-new-tokens must be >= 1");
    if (o.batch < 1) throw Error("--batch must be >= 1");
    if (o.threads > 0) set_compute_threads(o.threads);
    manifest = read_state_manifest(o.state);
    about = manifest.at("about");
    model_dir = o.model_dir.empty() ? about.at("model_dir").get<std::string>() : o.model_dir;
    model = Model::load(model_dir, me != 0);
    tok = std::make_unique<Tokenizer>(Tokenizer::load(model_dir));
    if (tok->hash() != about.at("tokenizer_sha256").get<std::string>())
      throw Error(model_dir + "/tokenizer.json is not the tokenizer the state " + o.state +
                  " was prefilled with (its SHA-256 differs)");
    questions = read_questions(o.questions);
  });
  std::string weights;
  check_collectively(world, [&]() {
    if (me == 0) {
      weights = weights_sha256(*model, o.quiet, "ask");
      if (weights != about.at("weights_sha256").get<std::string>())
        throw Error("the weights in " + model_dir + " are not those the state " + o.state +
                    " was prefilled with (weights_sha256 differs): prefill again with this model");
    }
  });

  const auto t_load = std::chrono::steady_clock::now();
  LoadedState loaded = load_state(world, o.state, model->config());
  const double load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();
  const int64_t L = loaded.layout.length;
  if (me == 0 && !o.quiet) {
    std::fprintf(stderr, "ringscan ask: state %s: %lld prefix tokens saved on %d rank(s)%s, loaded in %.2fs\n",
                 o.state.c_str(), (long long)L, loaded.saved_ranks,
                 loaded.resharded() ? (", re-sharded onto " + std::to_string(P) + " rank(s)").c_str() : "",
                 load_seconds);
  }

  // Each question's own ids: the state's template around its text.
  const Json& qt = about.at("question_template");
  const std::vector<int32_t> after_ids = qt.at("ids_after").get<std::vector<int32_t>>();
  PrefixSharedDecoder decoder(*model, world, std::move(loaded.st), o.batch);
  std::vector<std::vector<int32_t>> own(questions.size());
  check_collectively(world, [&]() {
    for (size_t i = 0; i < questions.size(); ++i) {
      own[i] = tok->encode(qt.at("text_before").get<std::string>() + questions[i].text +
                               qt.at("text_after").get<std::string>(),
                           false);
      own[i].insert(own[i].end(), after_ids.begin(), after_ids.end());
      GenerationRequest r;
      r.id = i;
      r.prompt = own[i];
      r.max_new_tokens = o.max_new_tokens;
      r.sampling = o.sampling;
      if (!o.ignore_eos) r.stop_ids = tok->eos_ids();
      decoder.submit(std::move(r));
    }
  });
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<GenerationResult> results;
  results = decoder.run();  // not inside check_collectively: a failure mid-step aborts every rank (cli/main.cpp)
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

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
                             {"state_ranks", loaded.saved_ranks},
                             {"ranks", P},
                             {"device", "cpu"},
                             {"gemm_inputs", "fp32"},
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
                   "ringscan ask: %zu question(s), %lld own + %lld generated tokens in %.2fs (%.1f tokens/s); "
                   "the %lld-token prefix was run once instead of %zu times: %lld prefill tokens avoided; "
                   "answers in %s\n",
                   questions.size(), (long long)own_tokens, (long long)generated, seconds,
                   (own_tokens + generated) / std::max(seconds, 1e-9), (long long)L, questions.size(),
                   (long long)avoided, o.out.c_str());
  });
  return 0;
}

}  // namespace ringscan
