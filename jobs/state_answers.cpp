// Questions against a saved state into a resumable result store (jobs/state_answers.h).
#include "jobs/state_answers.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>

#include "comm/mpi_communicator.h"
#include "io/result_store.h"
#include "jobs/batch_job.h"
#include "jobs/progress.h"
#include "jobs/result_rows.h"
#include "jobs/run_identity.h"
#include "runtime/mpi_context.h"
#include "runtime/work_progress.h"
#include "util/build_info.h"
#include "util/error.h"
#include "util/sha256.h"

namespace ringscan {

int answer_into_store(StateSession& s, comm::Communicator& world, const std::vector<StateQuestion>& questions,
                      const StateAnswersOptions& o) {
  const int me = world.rank(), P = world.size();
  std::vector<std::string> names, digests;
  for (const StateQuestion& q : questions) {
    names.push_back(q.name);
    digests.push_back(sha256_hex(q.text));  // a question edited under the same name is asked again
  }
  const QuestionDecodeOptions& d = o.decode;
  // What makes answers differ: the state (its prefix ids and weights), the template
  // its questions go into, the sampling, and the job's own options.
  Json identity = {{"job", o.job},
                   {"state_ids_sha256", s.manifest.at("ids_file").at("sha256")},
                   {"weights_sha256", s.about.at("weights_sha256")},
                   {"tokenizer_sha256", s.about.at("tokenizer_sha256")},
                   {"model_config", s.model->config().raw},
                   {"engine", s.engine->on_gpu() ? "cuda" : "cpu"},
                   {"question_template", s.about.at("question_template")},
                   {"generation",
                    {{"max_new_tokens", d.max_new_tokens},
                     {"temperature", d.sampling.temperature},
                     {"top_k", d.sampling.top_k},
                     {"top_p", d.sampling.top_p},
                     {"seed", d.sampling.seed},
                     {"ignore_eos", d.ignore_eos}}}};
  // The GPU engine's GEMM inputs change the answers; only set there, so a CPU run's identity is what it was.
  if (s.engine->on_gpu()) identity["gemm_inputs"] = s.engine->gemm_inputs();
  identity.update(o.identity_extra);
  std::unique_ptr<io::ResultStore> store;
  check_collectively(world, [&]() {
    store = io::ResultStore::open(o.out, identity, o.overwrite, names, MPI_COMM_WORLD, digests,
                                  Json{{"model_dir", s.model_dir}, {"state", s.options.state}}, o.repair);
  });
  const char* job = o.job.c_str();
  if (me == 0 && !o.quiet) std::fprintf(stderr, "ringscan %s: %s\n", job, store->summary().c_str());
  auto exit_status = [&]() {
    const io::ResultStore::StatusCounts& n = store->status_counts();
    return n.failed + n.skipped == 0 ? 0 : kExitSomeDocumentsNotOk;
  };
  if (store->already_complete()) return exit_status();

  // The questions not done by an earlier attempt: todo[i] is request i's question.
  std::vector<int64_t> todo;
  std::vector<std::vector<int32_t>> own;
  check_collectively(world, [&]() {
    for (size_t i = 0; i < questions.size(); ++i) {
      if (store->is_completed(i)) continue;
      todo.push_back(static_cast<int64_t>(i));
      own.push_back(question_ids(s, questions[i].text));
    }
  });
  const int64_t L = s.prefix_tokens();
  const bool truncated = s.about.value("truncated", false);
  int64_t generated = 0, own_tokens = 0;
  for (const auto& ids : own) own_tokens += static_cast<int64_t>(ids.size());
  // Progress in token positions (jobs/progress.h): each question's own ids and
  // up to --max-new-tokens; the decoder reports each step's rows as they run.
  const int64_t n = static_cast<int64_t>(todo.size());
  Progress progress(o.job, n, own_tokens + n * d.max_new_tokens, me == 0 && !o.quiet, o.progress_interval);
  ProgressCounts done;
  double in_flight = 0;  // positions run for questions not finished yet
  ScopedWorkListener listen([&](double positions) {
    in_flight += positions;
    progress.update({done.docs, done.positions + static_cast<int64_t>(in_flight), done.unused});
  });
  // Rank 0 stores each answer as its question finishes, writing a part file (an
  // fsync) at most once a second: a step is milliseconds on a GPU and questions
  // finish a few at a time, so a part per step would put a disk sync in most steps
  // of the decode loop; a killed run loses at most the last second's answers
  // (finalize writes the rest). A failure here aborts every rank (cli/main.cpp), as
  // a step's would.
  std::optional<std::chrono::steady_clock::time_point> last_flush;
  auto store_finished = [&](const std::vector<GenerationResult>& results) {
    for (const GenerationResult& g : results) {
      const int64_t answer = static_cast<int64_t>(g.tokens.size()), mine = static_cast<int64_t>(own[g.id].size());
      generated += answer;
      // The decoder ran a question's own ids and all its tokens but the last.
      in_flight = std::max(0.0, in_flight - static_cast<double>(mine + answer - 1));
      done.docs += 1;
      done.positions += mine + answer;
      done.unused += d.max_new_tokens - answer;
      if (me != 0) continue;
      const int64_t q = todo.at(g.id);
      io::Document doc;
      doc.name = questions[q].name;
      io::DocumentResult r = generation_result(q, doc, truncated, g, *s.tok);
      r.content_sha256 = digests[q];
      r.extra[o.text_key] = questions[q].text;
      r.extra["question_ids"] = own[g.id];
      r.extra["prompt_tokens"] = L + static_cast<int64_t>(own[g.id].size());
      r.extra["route"] = "saved_state";
      r.extra["ranks"] = P;
      store->add(std::move(r));
    }
    const auto now = std::chrono::steady_clock::now();
    if (me == 0 && (!last_flush || now - *last_flush >= std::chrono::seconds(1))) store->flush(), last_flush = now;
  };
  DecodeTiming timing;
  if (n > 0) decode_questions(s, world, own, d, &timing, store_finished);  // none left: no shard to read
  progress.finish(done);

  Json attributes = {{"job", o.job},
                     {"command_line", o.command_line},
                     {"ranks", P},
                     {"device", s.engine->label()},
                     {"gemm_inputs", s.engine->gemm_inputs()},
                     {"comm", s.engine->comm_backend()},
                     {"model_dir", s.model_dir},
                     {"model_config", s.model->config().raw.dump()},
                     {"weights_sha256", s.weights_sha256},
                     {"tokenizer_hash", s.tok->hash()},
                     {"ringscan_version", ringscan_version()},
                     {"state", s.options.state},
                     {"state_about", s.about},
                     {"prefix_tokens", L},
                     {"state_ranks", s.saved_ranks()},
                     {"batch", d.batch},
                     {"decode_seconds", timing.seconds}};
  attributes.update(o.attributes_extra);
  add_slurm_job(attributes);
  check_collectively(world, [&]() { store->finalize(attributes); });
  if (me == 0 && !o.quiet)
    std::fprintf(stderr,
                 "ringscan %s: %lld %s against the state's %lld-token prefix: %lld own + %lld generated tokens in "
                 "%.2fs on %s (cpu %.2fs on rank 0, %.1f tokens/s); the prefix was run once instead of %lld times: %lld "
                 "prefill tokens avoided; %s\n",
                 job, (long long)n, o.noun.c_str(), (long long)L, (long long)own_tokens, (long long)generated,
                 timing.seconds, s.engine->label().c_str(), timing.cpu_seconds,
                 (own_tokens + generated) / std::max(timing.seconds, 1e-9),
                 (long long)n, (long long)(L * std::max<int64_t>(0, n - 1)), store->summary().c_str());
  return exit_status();
}

}  // namespace ringscan
