// ringscan prefill (jobs/prefill_state.h).
#include "jobs/prefill_state.h"

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "comm/mpi_session.h"
#include "io/discovery.h"
#include "io/text_reader.h"
#include "jobs/document_tokens.h"
#include "jobs/prompt.h"
#include "jobs/run_identity.h"
#include "jobs/state_session.h"
#include "kernels/blas_runtime.h"
#include "runtime/engine.h"
#include "runtime/forwarded_segments.h"
#include "runtime/mpi_context.h"
#include "runtime/saved_state.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace ringscan {

namespace fs = std::filesystem;

namespace {

struct Prefix {
  std::vector<int32_t> ids;
  Json files = Json::array();
  bool truncated = false;
  std::string document;
  Json question_template;
};

Prefix build_prefix(const PrefillStateOptions& o, const Tokenizer& tok) {
  io::DiscoveryOptions d;
  d.inputs = o.inputs;
  d.include = o.include;
  d.exclude = o.exclude;
  d.mode = io::parse_document_mode(o.mode);
  d.use_gitignore = !o.no_gitignore;
  d.own_output = o.out;
  io::Discovery found = io::discover(d);
  if (found.documents.size() != 1)
    throw Error("prefill saves the state of one document, but the inputs make " +
                std::to_string(found.documents.size()) +
                " (give one directory with --mode codebase, or one file)");
  io::LoadedDocument doc = io::load_document(found.documents[0]);
  if (!doc.ok()) throw Error(found.documents[0].name + " has no readable text (" + doc.skip_reason + ")");
  Prefix p;
  p.document = found.documents[0].name;
  if (o.no_chat_template) {
    DocumentTokens t = tokenize_document(tok, doc, o.max_tokens, /*with_bos=*/true);
    p.ids = std::move(t.ids);
    for (const FileRange& f : t.files) p.files.push_back({{"path", f.path}, {"token_begin", f.begin}, {"token_end", f.end}});
    p.truncated = t.truncated;
    p.question_template = {{"text_before", "\n\nQuestion: "}, {"text_after", "\nAnswer:"}, {"ids_after", Json::array()}};
    return p;
  }
  PromptOptions po;
  po.instruction = o.instruction;
  po.system = o.system;
  const PromptFrame frame = make_prompt_frame(tok, po);
  DocumentTokens t = tokenize_document(tok, doc, o.max_tokens, /*with_bos=*/false);
  const int64_t shift = static_cast<int64_t>(frame.before.size());
  p.ids = frame.before;
  p.ids.insert(p.ids.end(), t.ids.begin(), t.ids.end());
  for (const FileRange& f : t.files)
    p.files.push_back({{"path", f.path}, {"token_begin", f.begin + shift}, {"token_end", f.end + shift}});
  p.truncated = t.truncated;
  p.question_template = {{"text_before", "\n\n"}, {"text_after", ""}, {"ids_after", frame.after}};
  return p;
}

// Why the state at `dir` is not this prefill ("" when it is): the prefix ids, the model
// and tokenizer, the engine and its GEMM inputs, the K/V dtype and the question
// template. Ranks and layout do not count: ask re-shards a state onto any number of ranks.
std::string other_prefill(const std::string& dir, const Json& want) {
  const Json m = read_state_manifest(dir);
  const Json& about = m.at("about");
  const Json have = {{"ids", m.at("ids_file").at("sha256")},
                     {"weights_sha256", about.at("weights_sha256")},
                     {"tokenizer_sha256", about.at("tokenizer_sha256")},
                     {"engine", about.value("engine", "cpu")},
                     {"gemm_inputs", about.value("gemm_inputs", "fp32")},
                     {"kv_dtype", state_kv_dtype(m) == DType::BF16 ? "bf16" : "fp32"},
                     {"question_template", about.at("question_template")}};
  for (const auto& [key, value] : want.items())
    if (have.at(key) != value)
      return key == "ids" ? "its prefix ids differ (other inputs, --max-tokens, --instruction or chat template)"
                          : "its " + key + " is " + have.at(key).dump() + ", not " + value.dump();
  return "";
}

}  // namespace

int run_prefill_state(const PrefillStateOptions& o, comm::Communicator& world) {
  const int me = world.rank(), P = world.size();
  const int local_rank = comm::local_rank();
  std::unique_ptr<Model> model;
  std::unique_ptr<Engine> engine;
  std::unique_ptr<Tokenizer> tok;
  Prefix prefix;
  LayoutKind kind{};
  check_collectively(world, [&]() {
    if (o.out.empty()) throw Error("prefill needs --out DIR (where the state goes)");
    if (o.inputs.empty()) throw Error("prefill needs --input PATH");
    kind = parse_layout(o.layout);
    if (o.kv_dtype != "fp32" && o.kv_dtype != "bf16")
      throw Error("--kv-dtype must be fp32 or bf16, got \"" + o.kv_dtype + "\"");
    if (o.threads > 0) set_compute_threads(o.threads);
    model = Model::load(o.model_dir, me != 0);
    engine = std::make_unique<Engine>(o.device, o.comm, local_rank);
    engine->set_gemm_inputs(o.gemm_inputs);
    tok = std::make_unique<Tokenizer>(Tokenizer::load(o.model_dir));
    prefix = build_prefix(o, *tok);
    if (prefix.ids.empty()) throw Error(prefix.document + " gives no tokens to prefill");
  });
  check_collectively(world, [&]() { engine->agree(world); });
  std::string weights;
  check_collectively(world, [&]() {
    if (me == 0) weights = weights_sha256(*model, o.quiet, "prefill");
  });
  weights.resize(64);
  world.broadcast(weights.data(), weights.size(), 0);

  // A state of this very prefill already at --out: nothing to do, so that a pipeline
  // or a requeued job may run `prefill` again before `ask`. Another prefill there is
  // refused now, not after the prefill (--overwrite replaces it).
  int32_t done = 0;
  check_collectively(world, [&]() {
    if (me != 0 || o.overwrite || !fs::exists(o.out)) return;
    const Json want = {{"ids", state_ids_sha256(prefix.ids)},
                       {"weights_sha256", weights},
                       {"tokenizer_sha256", tok->hash()},
                       {"engine", engine->on_gpu() ? "cuda" : "cpu"},
                       {"gemm_inputs", engine->gemm_inputs()},
                       {"kv_dtype", o.kv_dtype},
                       {"question_template", prefix.question_template}};
    const std::string why = other_prefill(o.out, want);
    if (!why.empty())
      throw Error(o.out + " already holds another prefill (" + why + "): give --overwrite to replace it");
    done = 1;
  });
  world.broadcast(&done, 1, 0);
  if (done) {
    if (me == 0 && !o.quiet)
      std::fprintf(stderr, "ringscan prefill: %s already holds this prefill (%zu tokens, same model, engine and K/V "
                           "dtype): nothing to do (--overwrite prefills again)\n",
                   o.out.c_str(), prefix.ids.size());
    return 0;
  }
  check_collectively(world, [&]() { engine->prepare(*model); });  // on GPUs the weights' upload: only when prefilling

  const auto t0 = std::chrono::steady_clock::now();
  const double cpu0 = process_cpu_seconds();
  const SequenceLayout layout = make_layout(static_cast<int64_t>(prefix.ids.size()), P, kind);
  // Not inside check_collectively: a failure mid-exchange aborts every rank (cli/main.cpp).
  std::unique_ptr<ForwardedSegments> mine = engine->forward_sp(
      world, layout,
      [&](const Segment& s) { return std::vector<int32_t>(prefix.ids.begin() + s.begin, prefix.ids.begin() + s.end()); },
      /*keep_decode_state=*/true);
  SequenceParallelDecodeState st = mine->take_decode_state();
  mine.reset();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu_seconds = process_cpu_seconds() - cpu0;

  const Json about = {{"model_dir", o.model_dir},
                      {"weights_sha256", weights},
                      {"tokenizer_sha256", tok->hash()},
                      {"model_config", model->config().raw},
                      {"engine", engine->on_gpu() ? "cuda" : "cpu"},
                      {"device", engine->label()},
                      {"comm", engine->comm_backend()},
                      {"gemm_inputs", engine->gemm_inputs()},
                      {"document", prefix.document},
                      {"mode", o.mode},
                      {"files", prefix.files},
                      {"truncated", prefix.truncated},
                      {"chat_template", !o.no_chat_template},
                      {"question_template", prefix.question_template},
                      {"prefill_seconds", seconds},
                      {"prefill_cpu_seconds", cpu_seconds},  // rank 0's process, all its threads
                      {"command_line", o.command_line}};
  save_state(world, o.out, layout, model->config(), st, prefix.ids, about, o.overwrite,
             o.kv_dtype == "bf16" ? DType::BF16 : DType::F32);
  if (me == 0 && !o.quiet) {
    const StateSizes sz = state_sizes(read_state_manifest(o.out));
    uint64_t total = sz.driver + sz.ids;
    for (uint64_t b : sz.kv_per_rank) total += b;
    std::fprintf(stderr,
                 "ringscan prefill: %s: %zu tokens (%zu file(s)%s) on %d rank(s) (%s), %s layout, in %.2fs (%.0f tokens/s); "
                 "state %.1f MiB (K/V %s) saved to %s\n",
                 prefix.document.c_str(), prefix.ids.size(), prefix.files.size(),
                 prefix.truncated ? ", truncated by --max-tokens" : "", P, engine->label().c_str(), layout_name(kind), seconds,
                 prefix.ids.size() / std::max(seconds, 1e-9), total / 1048576.0, o.kv_dtype.c_str(), o.out.c_str());
  }
  return 0;
}

}  // namespace ringscan
