// Opening a saved state and decoding questions against it (jobs/state_session.h).
#include "jobs/state_session.h"

#include <chrono>
#include <cstdio>
#include <ctime>

#include "comm/mpi_session.h"
#include "jobs/run_identity.h"
#include "kernels/blas_runtime.h"
#include "runtime/mpi_context.h"
#include "runtime/prefix_decode.h"
#include "util/error.h"

namespace ringscan {

StateSession open_state_session(const StateSessionOptions& o, comm::Communicator& world) {
  const int me = world.rank();
  StateSession s;
  check_collectively(world, [&]() {
    if (o.threads > 0) set_compute_threads(o.threads);
    s.options = o;
    s.engine = std::make_unique<Engine>(o.device, o.comm, comm::local_rank());
    s.engine->set_gemm_inputs(o.gemm_inputs);
    s.manifest = read_state_manifest(o.state);
    s.about = s.manifest.at("about");
    s.model_dir = o.model_dir.empty() ? s.about.at("model_dir").get<std::string>() : o.model_dir;
    s.model = Model::load(s.model_dir, me != 0);
    s.tok = std::make_unique<Tokenizer>(Tokenizer::load(s.model_dir));
    if (s.tok->hash() != s.about.at("tokenizer_sha256").get<std::string>())
      throw Error(s.model_dir + "/tokenizer.json is not the tokenizer the state " + o.state +
                  " was prefilled with (its SHA-256 differs)");
  });
  check_collectively(world, [&]() { s.engine->agree(world); });
  check_collectively(world, [&]() {
    if (me != 0) return;
    s.weights_sha256 = weights_sha256(*s.model, o.quiet, o.job);
    if (s.weights_sha256 != s.about.at("weights_sha256").get<std::string>())
      throw Error("the weights in " + s.model_dir + " are not those the state " + o.state +
                  " was prefilled with (weights_sha256 differs): prefill again with this model");
  });

  return s;
}

void load_session_state(StateSession& s, comm::Communicator& world) {
  const int P = world.size();
  // The engine (on a GPU: the weights' upload) only now: a rerun that finds every
  // answer stored needs neither it nor the shards.
  check_collectively(world, [&]() { s.engine->prepare(*s.model); });
  const auto t0 = std::chrono::steady_clock::now();
  s.loaded = load_state(world, s.options.state, s.model->config());
  s.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (world.rank() == 0 && !s.options.quiet)
    std::fprintf(stderr,
                 "ringscan %s: state %s: %lld prefix tokens saved on %d rank(s)%s, K/V %s%s, loaded in %.2fs; "
                 "device %s%s, comm %s\n",
                 s.options.job.c_str(), s.options.state.c_str(), (long long)s.loaded.layout.length, s.loaded.saved_ranks,
                 s.loaded.resharded() ? (", re-sharded onto " + std::to_string(P) + " rank(s)").c_str() : "",
                 s.loaded.kv_dtype.c_str(), s.loaded.kv_mapped ? " (memory-mapped)" : "", s.load_seconds,
                 s.engine->label().c_str(), s.engine->why_cpu().empty() ? "" : (" (" + s.engine->why_cpu() + ")").c_str(),
                 s.engine->comm_backend().c_str());
}

std::vector<int32_t> question_ids(const StateSession& s, const std::string& text) {
  const Json& qt = s.about.at("question_template");
  std::vector<int32_t> ids =
      s.tok->encode(qt.at("text_before").get<std::string>() + text + qt.at("text_after").get<std::string>(), false);
  const std::vector<int32_t> after = qt.at("ids_after").get<std::vector<int32_t>>();
  ids.insert(ids.end(), after.begin(), after.end());
  return ids;
}

std::vector<GenerationResult> decode_questions(StateSession& s, comm::Communicator& world,
                                               const std::vector<std::vector<int32_t>>& own,
                                               const QuestionDecodeOptions& o, DecodeTiming* timing,
                                               const FinishedQuestions& finished) {
  load_session_state(s, world);
  std::unique_ptr<PrefixSharedDecoder> decoder;
  // The GPU engine uploads the prefix here (each rank its shard, the driver its Mamba states).
  check_collectively(world, [&]() {
    decoder = std::make_unique<PrefixSharedDecoder>(s.engine->prefix_decode_engine(), world, std::move(s.loaded.st),
                                                    o.batch, std::move(s.loaded.prefix_kv));
  });
  check_collectively(world, [&]() {
    for (size_t i = 0; i < own.size(); ++i) {
      GenerationRequest r;
      r.id = i;
      r.prompt = own[i];
      r.max_new_tokens = o.max_new_tokens;
      r.sampling = o.sampling;
      if (!o.ignore_eos) r.stop_ids = s.tok->eos_ids();
      decoder->submit(std::move(r));
    }
  });
  const auto t0 = std::chrono::steady_clock::now();
  const double cpu0 = process_cpu_seconds();
  // Not inside check_collectively: a failure mid-step aborts every rank (cli/main.cpp).
  std::vector<GenerationResult> results;
  while (!decoder->idle()) {
    std::vector<GenerationResult> done = decoder->step();
    if (done.empty()) continue;
    if (finished) finished(done);
    for (GenerationResult& r : done) results.push_back(std::move(r));
  }
  timing->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  timing->cpu_seconds = process_cpu_seconds() - cpu0;
  return results;
}

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

}  // namespace ringscan
