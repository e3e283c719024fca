#include "jobs/batch_job.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <boost/program_options.hpp>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <set>
#include <tuple>

#include "cli/mpi_context.h"
#include "io/discovery.h"
#include "io/file_digest.h"
#include "io/result_store.h"
#include "io/text_reader.h"
#include "jobs/document_tokens.h"
#include "jobs/progress.h"
#include "jobs/prompt.h"
#include "runtime/decode.h"
#include "runtime/engine.h"
#include "runtime/scheduler.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace po = boost::program_options;

namespace ringscan {

namespace {

struct JobOptions {
  std::vector<std::string> inputs, include, exclude;
  std::string model_dir, out, mode = "file", layout = "zigzag", device = "auto", comm = "auto";
  bool no_gitignore = false, overwrite = false, repair = false, quiet = false;
  int sp = 0;
  int64_t max_tokens = 0;
  double memory_gib = 0;
  double progress_interval = 10;
  // summarize
  PromptOptions prompt;
  int64_t max_new_tokens = 128;
  kernels::SamplingParams sampling;
  int batch = 16;
  bool ignore_eos = false;
};

std::string number_text(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string command_line(int argc, char** argv) {
  std::string s;
  for (int i = 0; i < argc; ++i) s += (i ? " " : "") + std::string(argv[i]);
  return s;
}

// What makes two runs' results the same: a rerun with a different identity
// must not resume into (or silently overwrite) an existing output.
// The engine is part of it: GPU results (bf16 GEMM inputs) differ from the
// CPU's in the last digits, and one file must not mix them.
// Options that cannot change a result (--memory-per-rank, --sp, --layout, the number of
// ranks, progress, --overwrite, --repair) stay out of it, so that a rerun may change them.
Json run_identity(const JobSpec& spec, const JobOptions& o, const ModelConfig& c, const Tokenizer& tok,
                  const Engine& engine, const std::string& weights_sha256) {
  return Json{{"job", spec.name},          {"model_config", c.raw},      {"tokenizer_sha256", tok.hash()},
              {"weights_sha256", weights_sha256},
              {"engine", engine.on_gpu() ? "cuda" : "cpu"},
              {"inputs", o.inputs},        {"include", o.include},       {"exclude", o.exclude},
              {"gitignore", !o.no_gitignore}, {"mode", o.mode},          {"max_tokens", o.max_tokens},
              {"generation", spec.want.generate ? Json{{"prompt_file", o.prompt.prompt_file}, {"system", o.prompt.system},
                                                      {"max_new_tokens", o.max_new_tokens},
                                                      {"temperature", o.sampling.temperature},
                                                      {"top_k", o.sampling.top_k}, {"top_p", o.sampling.top_p},
                                                      {"seed", o.sampling.seed}, {"ignore_eos", o.ignore_eos}}
                                                : Json()}};
}

// SHA-256 over the checkpoint's safetensors files, each file's digest cached by its
// size and mtime (io/file_digest.h): a checkpoint is read in full once.
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

// The job's exit status (docs/cli.md): every document ok, or some not.
int exit_status(const io::ResultStore& store) {
  const io::ResultStore::StatusCounts& n = store.status_counts();
  return n.failed + n.skipped == 0 ? 0 : kExitSomeDocumentsNotOk;
}

// Why computed values cannot be a result ("" when they can): a NaN or infinite log-prob
// (after the first token, which has none) or embedding, e.g. from broken weights.
std::string non_finite_values(const DocumentValues& v) {
  auto count = [](const std::vector<float>& x, size_t from, size_t* first) {
    size_t bad = 0;
    for (size_t i = from; i < x.size(); ++i)
      if (!std::isfinite(x[i])) {
        if (bad++ == 0) *first = i;
      }
    return bad;
  };
  size_t first = 0;
  if (size_t bad = count(v.logprob, 1, &first))
    return "the model computed non-finite log-probs (NaN or infinity) for " + std::to_string(bad) + " of " +
           std::to_string(v.logprob.size() - 1) + " tokens, first at token " + std::to_string(first) +
           "; check the checkpoint's weights and config.json";
  for (const auto* e : {&v.embedding_mean, &v.embedding_last})
    if (size_t bad = count(*e, 0, &first))
      return "the model computed a non-finite embedding (NaN or infinity in " + std::to_string(bad) + " of " +
             std::to_string(e->size()) + " values); check the checkpoint's weights and config.json";
  return "";
}

// A generated summary: its ids, text, why it stopped, counts and timing in `extra`.
io::DocumentResult generation_result(int64_t index, const io::Document& doc, bool truncated,
                                     const GenerationResult& g, const Tokenizer& tok) {
  io::DocumentResult r;
  r.index = static_cast<uint64_t>(index);
  r.path = doc.name;
  r.status = io::doc_status::kOk;
  if (g.reason == StopReason::NonFiniteLogits) {
    r.status = io::doc_status::kFailed;
    r.error = "non-finite logits after " + std::to_string(g.tokens.size()) +
              " generated tokens; check the checkpoint's weights and config.json";
  }
  r.truncated = truncated;
  r.nll_sum = r.nll_mean = r.perplexity = std::numeric_limits<double>::quiet_NaN();
  r.extra = Json{{"generated_ids", g.tokens},
                 {"text", tok.decode(g.tokens, /*skip_special=*/true)},
                 {"finish_reason", g.reason == StopReason::StopId ? "stop"
                                   : g.reason == StopReason::Length ? "length"
                                                                    : "non_finite_logits"},
                 {"n_generated", g.tokens.size()},
                 {"prompt_tokens", g.prompt_tokens},
                 {"first_token_seconds", g.first_token_seconds},
                 {"decode_seconds", g.decode_seconds}};
  return r;
}

// -sum of logprob[t] for t in [begin, end), skipping t = 0 (nothing predicts
// the first token): the NLL and the count of scored tokens of a range.
std::pair<double, uint64_t> nll_over(const std::vector<float>& logprob, int64_t begin, int64_t end) {
  double nll = 0;
  uint64_t n = 0;
  for (int64_t i = std::max<int64_t>(begin, 1); i < end; ++i) nll -= logprob[i], ++n;
  return {nll, n};
}

double perplexity_of(double nll, uint64_t n) {
  return n ? std::exp(nll / static_cast<double>(n)) : std::numeric_limits<double>::quiet_NaN();
}

// A document that was not computed: skipped (error = the skip reason) or failed
// (error = why); its tokens are kept when it had any, so n_tokens says how long it was.
io::DocumentResult not_computed(int64_t index, const io::Document& doc, const char* status, const std::string& error,
                                std::vector<int32_t> ids = {}) {
  io::DocumentResult r;
  r.index = static_cast<uint64_t>(index);
  r.path = doc.name;
  r.status = status;
  r.error = error;
  r.token_ids = std::move(ids);
  r.nll_sum = r.nll_mean = r.perplexity = std::numeric_limits<double>::quiet_NaN();
  return r;
}

// Per-document result rows from the computed values; `failed` when they are not finite.
io::DocumentResult make_result(int64_t index, const io::Document& doc, const DocumentTokens& t,
                               const DocumentValues& v, const JobSpec& spec) {
  constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  if (const std::string why = non_finite_values(v); !why.empty()) {
    io::DocumentResult r = not_computed(index, doc, io::doc_status::kFailed, why, t.ids);
    r.truncated = t.truncated;
    return r;
  }
  io::DocumentResult r;
  r.index = static_cast<uint64_t>(index);
  r.path = doc.name;
  r.status = io::doc_status::kOk;
  r.truncated = t.truncated;
  r.token_ids = t.ids;
  r.nll_sum = r.nll_mean = r.perplexity = nan;
  if (spec.want.logprobs) {
    r.logprob = v.logprob;
    std::tie(r.nll_sum, r.n_scored) = nll_over(v.logprob, 0, static_cast<int64_t>(v.logprob.size()));
    r.nll_mean = r.n_scored ? r.nll_sum / static_cast<double>(r.n_scored) : nan;
    r.perplexity = perplexity_of(r.nll_sum, r.n_scored);
  }
  if (doc.codebase)
    for (const auto& f : t.files) {
      io::FileResult fr;
      fr.path = f.path;
      fr.token_begin = static_cast<uint64_t>(f.begin);
      fr.token_end = static_cast<uint64_t>(f.end);
      fr.nll_sum = fr.perplexity = nan;
      if (spec.want.logprobs) {  // a file's first token is scored in the context of everything before it
        std::tie(fr.nll_sum, fr.n_scored) = nll_over(v.logprob, f.begin, f.end);
        fr.perplexity = perplexity_of(fr.nll_sum, fr.n_scored);
      }
      r.files.push_back(fr);
    }
  r.embedding_mean = v.embedding_mean;
  r.embedding_last = v.embedding_last;
  r.skipped_files = t.skipped;
  return r;
}

}  // namespace

int run_batch_job(const JobSpec& spec, int argc, char** argv) {
  JobOptions o;
  po::options_description opts(spec.summary);
  opts.add_options()("help,h", "this help")
      ("model", po::value(&o.model_dir)->required(), "model folder (config.json, safetensors, tokenizer.json)")
      ("input", po::value(&o.inputs)->required()->composing(), "files, directories, or @list.txt (repeatable)")
      ("out", po::value(&o.out)->required(), "output HDF5 file")
      ("mode", po::value(&o.mode)->default_value("file"), "file: a document per file; codebase: a document per input directory")
      ("include", po::value(&o.include)->composing(), "glob of files to keep inside directories (repeatable)")
      ("exclude", po::value(&o.exclude)->composing(), "glob of files or folders to skip (repeatable)")
      ("no-gitignore", po::bool_switch(&o.no_gitignore), "do not honour .gitignore files")
      ("max-tokens", po::value(&o.max_tokens)->default_value(0), "truncate documents to this many tokens (0: no limit)")
      ("sp", po::value(&o.sp)->default_value(0), "ranks per sequence-parallel group for long documents (0: sized from length)")
      ("layout", po::value(&o.layout)->default_value("zigzag"), "sequence-parallel layout: zigzag or contiguous")
      ("memory-per-rank", po::value(&o.memory_gib)->default_value(0), "GiB a rank may use (0: this node's memory / ranks on it x 0.7; on GPUs: 90% of its GPU's free memory / ranks sharing it)")
      ("overwrite", po::bool_switch(&o.overwrite), "replace an existing output from a different model or options")
      ("repair", po::bool_switch(&o.repair), "drop damaged part files of an unfinished run and compute their documents again")
      ("quiet", po::bool_switch(&o.quiet), "no progress output")
      ("progress-interval", po::value(&o.progress_interval)->default_value(10), "seconds between progress lines when not on a terminal")
      ("device", po::value(&o.device)->default_value("auto"), "auto (GPUs when every rank has one, else the CPU), cpu or cuda")
      ("comm", po::value(&o.comm)->default_value("auto"), "sequence-parallel exchanges: mpi (through host memory; ranks may share a GPU), nccl (device buffers, one GPU per rank), auto (nccl when every rank has its own GPU, else mpi)");
  if (spec.want.generate)
    opts.add_options()
        ("max-new-tokens", po::value(&o.max_new_tokens)->default_value(128), "tokens to generate per document at most")
        ("temperature", po::value(&o.sampling.temperature)->default_value(0.f), "sampling temperature (0: greedy)")
        ("top-k", po::value(&o.sampling.top_k)->default_value(0), "sample among the k most likely tokens (0: all)")
        ("top-p", po::value(&o.sampling.top_p)->default_value(1.f), "nucleus sampling: smallest set with this probability")
        ("seed", po::value(&o.sampling.seed)->default_value(0), "random seed (same seed, same summaries)")
        ("prompt-file", po::value(&o.prompt.prompt_file), "prompt text with {document} (default: the chat template)")
        ("system", po::value(&o.prompt.system), "system turn of the chat template")
        ("batch", po::value(&o.batch)->default_value(16), "documents decoded together per rank")
        ("ignore-eos", po::bool_switch(&o.ignore_eos), "always generate --max-new-tokens");

  cli::start_mpi(&argc, &argv);
  auto world = comm::MpiCommunicator::create();
  const int P = world->size(), me = world->rank();
  const int local_rank = comm::local_rank();  // may be collective: every rank, before anything can fail
  po::variables_map vm;
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tok;
  io::Discovery found;
  PromptFrame frame;
  LayoutKind layout_kind{};
  std::unique_ptr<Engine> engine;
  cli::check_collectively(*world, [&]() {
    po::store(po::parse_command_line(argc, argv, opts), vm);
    if (vm.count("help")) return;
    po::notify(vm);
    layout_kind = parse_layout(o.layout);
    if (o.sp < 0 || o.sp > P) throw Error("--sp " + std::to_string(o.sp) + " is not between 0 and the " + std::to_string(P) + " ranks");
    if (o.max_tokens < 0) throw Error("--max-tokens must be >= 0");
    // Comparisons written so that NaN fails them: a NaN option would pass "< 0" checks.
    if (!(std::isfinite(o.memory_gib) && o.memory_gib >= 0))
      throw Error("--memory-per-rank must be a finite number of GiB >= 0 (0: the default), got " + number_text(o.memory_gib));
    if (!(std::isfinite(o.progress_interval) && o.progress_interval > 0))
      throw Error("--progress-interval must be a finite number of seconds > 0, got " + number_text(o.progress_interval));
    model = Model::load(o.model_dir, me != 0);
    engine = std::make_unique<Engine>(o.device, o.comm, local_rank);
    tok = std::make_unique<Tokenizer>(Tokenizer::load(o.model_dir));
    if (tok->vocab_size() > model->config().vocab_size)
      throw Error(o.model_dir + ": tokenizer.json has " + std::to_string(tok->vocab_size()) +
                  " ids but the model's vocab_size is " + std::to_string(model->config().vocab_size));
    if (spec.want.generate) {
      if (o.max_new_tokens < 1) throw Error("--max-new-tokens must be at least 1");
      if (o.batch < 1) throw Error("--batch must be at least 1");
      if (!(std::isfinite(o.sampling.temperature) && o.sampling.temperature >= 0))
        throw Error("--temperature must be a finite number >= 0 (0: greedy), got " + number_text(o.sampling.temperature));
      if (!(std::isfinite(o.sampling.top_p) && o.sampling.top_p > 0 && o.sampling.top_p <= 1))
        throw Error("--top-p must be a number in (0, 1] (1: no limit), got " + number_text(o.sampling.top_p));
      if (o.sampling.top_k < 0) throw Error("--top-k must be >= 0 (0: no limit)");
      frame = make_prompt_frame(*tok, o.prompt);
    }
    io::DiscoveryOptions d;
    d.inputs = o.inputs;
    d.include = o.include;
    d.exclude = o.exclude;
    d.mode = io::parse_document_mode(o.mode);
    d.use_gitignore = !o.no_gitignore;
    d.own_output = o.out;
    found = io::discover(d);
  });
  if (vm.count("help")) {
    if (me == 0) std::cout << opts << "\n";
    return 0;
  }
  cli::check_collectively(*world, [&]() { engine->agree(*world); });
  cli::check_collectively(*world, [&]() { engine->prepare(*model); });
  const ModelConfig& c = model->config();
  const auto& docs = found.documents;
  const int64_t n_docs = static_cast<int64_t>(docs.size());

  // The checkpoint's weights are part of the run's identity (same config.json, other
  // weights: other results). Rank 0 hashes them, once per checkpoint (io/file_digest.h).
  std::string weights;
  cli::check_collectively(*world, [&]() {
    if (me == 0) weights = weights_sha256(*model, o.quiet, spec.name);
  });
  weights.resize(64);
  world->broadcast(weights.data(), weights.size(), 0);

  // Every document is read and its content hashed, spread over ranks by size: a stored
  // result is reused only for the same content. Only documents still to compute are
  // tokenized, below.
  // Where the time goes, per rank (bench/score reports the shares).
  using clock = std::chrono::steady_clock;
  auto seconds_since = [](clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); };
  double t_tokenize = 0, t_compute = 0, t_write = 0;
  auto t0 = clock::now();
  std::vector<uint64_t> sizes;
  for (const auto& d : docs) {
    uint64_t b = 0;
    for (const auto& f : d.files) b += f.bytes;
    sizes.push_back(b);
  }
  const std::vector<int> reader = balance_by_size(sizes, P);
  std::map<int64_t, io::LoadedDocument> loaded;  // documents this rank read
  std::string my_digests;
  for (int64_t d = 0; d < n_docs; ++d) {
    if (reader[d] != me) continue;
    io::LoadedDocument& l = loaded[d] = io::load_document(docs[d]);
    my_digests += l.content_sha256;
  }
  const std::vector<std::size_t> digest_bytes = world->all_gather_counts(my_digests.size());
  std::string all_digests(64 * static_cast<size_t>(n_docs), '\0');
  world->all_gather_v(my_digests.data(), all_digests.data(), digest_bytes);
  std::vector<std::string> content(n_docs);
  {
    std::vector<size_t> cursor(P, 0);  // rank r's digests arrive in its documents' order
    for (int r = 1; r < P; ++r) cursor[r] = cursor[r - 1] + digest_bytes[r - 1];
    for (int64_t d = 0; d < n_docs; ++d) {
      content[d] = all_digests.substr(cursor[reader[d]], 64);
      cursor[reader[d]] += 64;
    }
  }

  std::unique_ptr<io::ResultStore> store;
  std::vector<std::string> names;
  for (const auto& d : docs) names.push_back(d.name);
  cli::check_collectively(*world, [&]() {
    store = io::ResultStore::open(o.out, run_identity(spec, o, c, *tok, *engine, weights), o.overwrite, names,
                                  MPI_COMM_WORLD, content, Json{{"model_dir", o.model_dir}}, o.repair);
  });
  if (me == 0 && !o.quiet) {
    std::cerr << "ringscan " << spec.name << ": device " << engine->label()
              << (engine->why_cpu().empty() ? "" : " (" + engine->why_cpu() + ")") << ", comm "
              << engine->comm_backend() << "\n";
    std::cerr << "ringscan " << spec.name << ": " << store->summary() << "\n";
    if (!store->already_complete())
      for (const auto& s : found.skipped) std::cerr << io::skip_warning(s) << "\n";
  }
  if (store->already_complete()) return exit_status(*store);

  // Tokenizing the documents still to compute, on the rank that read them.
  std::vector<int> holder(n_docs, -1);  // who tokenized it (every rank knows)
  for (int64_t d = 0; d < n_docs; ++d)
    if (!store->is_completed(static_cast<uint64_t>(d))) holder[d] = reader[d];
  std::map<int64_t, DocumentTokens> mine;  // documents this rank tokenized
  std::vector<int64_t> counts(n_docs, -1);  // tokens per document; -1: not to run
  std::vector<int64_t> truncated(n_docs, 0);
  for (auto& [d, l] : loaded) {
    if (store->is_completed(static_cast<uint64_t>(d))) continue;
    io::LoadedDocument doc = std::move(l);
    if (!o.quiet)
      for (const auto& s : doc.skipped) std::cerr << io::skip_warning(s) << "\n";
    if (!doc.ok()) {
      io::DocumentResult r = not_computed(d, docs[d], io::doc_status::kSkipped, doc.skip_reason);
      r.skipped_files = doc.skipped;
      r.extra["detail"] = doc.skip_detail;
      store->add(r);
      continue;
    }
    DocumentTokens t = tokenize_document(*tok, doc, o.max_tokens, !spec.want.generate);
    t.skipped = std::move(doc.skipped);
    if (spec.want.generate) {  // the prompt: frame.before + document + frame.after
      t.ids.insert(t.ids.begin(), frame.before.begin(), frame.before.end());
      t.ids.insert(t.ids.end(), frame.after.begin(), frame.after.end());
      for (auto& f : t.files) f.begin += frame.before.size(), f.end += frame.before.size();
    }
    counts[d] = static_cast<int64_t>(t.ids.size());
    truncated[d] = t.truncated;
    mine.emplace(d, std::move(t));
  }
  loaded.clear();
  t_tokenize = seconds_since(t0);
  world->all_reduce(counts.data(), counts.size(), comm::ReduceOp::max);
  world->all_reduce(truncated.data(), truncated.size(), comm::ReduceOp::max);
  t0 = clock::now();
  double comm_wait = 0;  // seconds blocked in sequence-parallel communication
  double t_flush = 0;    // writing part files (inside the compute phase's time)
  auto flush = [&]() {
    auto tf = clock::now();
    store->flush();
    t_flush += seconds_since(tf);
  };

  // Scheduling from the memory plan.
  ScheduleInput si;
  si.tokens = counts;
  si.tokenized_on = holder;
  si.ranks = P;
  si.forced_sp = o.sp;
  const int node_ranks = comm::ranks_on_this_node();  // collective: every rank calls it
  const uint64_t memory = o.memory_gib > 0 ? static_cast<uint64_t>(o.memory_gib * (1ull << 30)) : 0;  // 0: the engine's default
  si.budget_tokens = engine->token_budget(memory, node_ranks, &si.cost);
  // Every rank must plan the same schedule: use the smallest budget of any node.
  int64_t neg_budget = -si.budget_tokens;
  world->all_reduce(&neg_budget, 1, comm::ReduceOp::max);
  si.budget_tokens = -neg_budget;
  const std::vector<DocPlan> plan = schedule_documents(si);
  if (engine->on_gpu() && spec.want.generate)
    cli::check_collectively(*world, [&]() {
      // --max-tokens truncates the document, not the prompt around it: leave room for the frame.
      const int64_t room = si.budget_tokens - static_cast<int64_t>(frame.before.size() + frame.after.size());
      for (int64_t d = 0; d < n_docs; ++d)
        if (counts[d] >= 0 && plan[d].route == DocRoute::SequenceParallel)
          throw Error(docs[d].name + " (" + std::to_string(counts[d]) + " prompt tokens) needs sequence parallelism over " +
                      std::to_string(plan[d].group_size) + " ranks, and summarize decodes sequence-parallel documents "
                      "on the CPU engine only in this version: run with --device cpu" +
                      (room > 0 ? ", or --max-tokens " + std::to_string(room) : std::string()));
    });

  int64_t total_tokens = 0, total_docs = 0;
  for (int64_t d = 0; d < n_docs; ++d)
    if (counts[d] >= 0) total_tokens += counts[d], ++total_docs;
  Progress progress(spec.name, total_docs, total_tokens, me == 0 && !o.quiet, o.progress_interval);
  ProgressRelay relay;  // the other ranks' counts during the data-parallel phase
  int64_t docs_done = 0, tokens_done = 0;       // sequence-parallel documents (every rank counts them)
  int64_t my_docs = 0, my_tokens = 0;           // data-parallel documents this rank ran

  // Long documents first, sequence parallel: every rank walks them in the same order.
  for (int64_t d = 0; d < n_docs; ++d) {
    if (counts[d] < 0 || plan[d].route != DocRoute::SequenceParallel) continue;
    const int g = plan[d].group_size, h = holder[d];
    const int64_t n = counts[d];
    auto group = world->split(me < g ? 0 : -1, me);
    SequenceLayout layout = make_layout(n, g, layout_kind);
    // The holder sends each segment (and the next segment's first id) to its owner.
    std::vector<comm::Request> sends;
    std::vector<std::vector<int32_t>> outgoing;
    if (me == h) {
      const auto& ids = mine.at(d).ids;
      for (const auto& s : layout.segments) {
        if (s.owner == me) continue;
        outgoing.emplace_back(ids.begin() + s.begin, ids.begin() + std::min(n, s.end() + 1));
        sends.push_back(world->isend(outgoing.back().data(), outgoing.back().size(), s.owner));
      }
    }
    // Segment s's ids (and the next segment's first id) from the holder.
    auto segment_from_holder = [&](const Segment& s) {
      const int64_t len = std::min(n, s.end() + 1) - s.begin;
      if (me == h) {
        const auto& ids = mine.at(d).ids;
        return std::vector<int32_t>(ids.begin() + s.begin, ids.begin() + s.begin + len);
      }
      std::vector<int32_t> ids(len);
      world->recv(ids.data(), ids.size(), h);
      return ids;
    };
    if (spec.want.generate) {
      // Every rank of the group decodes together and gets the result; rank 0 stores it.
      if (group) {
        ShardedDecoder dec(*model, *group, layout_kind, 1);
        GenerationRequest req;
        req.id = static_cast<uint64_t>(d);
        req.prompt_length = n;
        req.max_new_tokens = o.max_new_tokens;
        req.sampling = o.sampling;
        if (!o.ignore_eos) req.stop_ids = tok->eos_ids();
        req.segment_ids = [&](const Segment& s) {
          auto ids = segment_from_holder(s);
          ids.resize(s.len);
          return ids;
        };
        dec.submit(std::move(req));
        std::vector<GenerationResult> results = dec.run();
        for (const auto& [label, t] : group->traffic_by_label()) comm_wait += t.wait_seconds;
        if (me == 0) {
          io::DocumentResult r = generation_result(d, docs[d], truncated[d] != 0, results.at(0), *tok);
          r.extra["route"] = "sequence_parallel";
          r.extra["ranks"] = g;
          store->add(r);
          flush();
        }
      }
      comm::wait_all(sends);
      mine.erase(d);
      ++docs_done;
      tokens_done += n;
      progress.update(docs_done, tokens_done);
      continue;
    }
    DocumentValues values;
    if (group) {
      values = engine->compute_sp(*group, layout, segment_from_holder, spec.want);
      for (const auto& [label, t] : group->traffic_by_label()) comm_wait += t.wait_seconds;
    }
    comm::wait_all(sends);
    // Group rank 0 (world rank 0) has the values; the holder writes the row.
    const int64_t n_lp = spec.want.logprobs ? n : 0, n_emb = spec.want.embeddings ? c.hidden_size : 0;
    if (me == 0 && h != 0) {
      world->send(values.logprob.data(), n_lp, h);
      world->send(values.embedding_mean.data(), n_emb, h);
      world->send(values.embedding_last.data(), n_emb, h);
    } else if (me == h && h != 0) {
      values.logprob.resize(n_lp);
      values.embedding_mean.resize(n_emb);
      values.embedding_last.resize(n_emb);
      world->recv(values.logprob.data(), n_lp, 0);
      world->recv(values.embedding_mean.data(), n_emb, 0);
      world->recv(values.embedding_last.data(), n_emb, 0);
    }
    if (me == h) {
      io::DocumentResult r = make_result(d, docs[d], mine.at(d), values, spec);
      r.extra["route"] = "sequence_parallel";
      r.extra["ranks"] = g;
      store->add(r);
      flush();
    }
    mine.erase(d);
    ++docs_done;
    tokens_done += n;
    progress.update(docs_done, tokens_done);
  }

  // The rest, data parallel: each rank runs the documents it read. Short ones
  // go in packed batches of up to one prefill block of tokens (their per-token
  // GEMMs batched); longer ones alone, prefilled block by block.
  const int64_t batch_tokens = model->block_tokens();
  std::vector<int64_t> batch;
  int64_t batch_rows = 0;
  auto store_values = [&](int64_t d, const DocumentValues& v) {
    io::DocumentResult r = make_result(d, docs[d], mine.at(d), v, spec);
    r.extra["route"] = "data_parallel";
    r.extra["ranks"] = 1;
    store->add(r);
  };
  auto finished = [&](int64_t d) {
    flush();
    ++my_docs;
    my_tokens += counts[d];
    relay.report(my_docs, my_tokens);
    if (me == 0) {
      int64_t all_docs = 0, all_tokens = 0;
      relay.totals(&all_docs, &all_tokens);
      progress.update(docs_done + all_docs, tokens_done + all_tokens);
    }
  };
  auto run_batch = [&]() {
    if (batch.empty()) return;
    std::vector<std::vector<int32_t>> seqs;
    for (int64_t d : batch) seqs.push_back(mine.at(d).ids);
    std::vector<DocumentValues> values = engine->compute_packed(seqs, spec.want);
    for (size_t i = 0; i < batch.size(); ++i) store_values(batch[i], values[i]);
    for (int64_t d : batch) finished(d);
    batch.clear();
    batch_rows = 0;
  };
  if (spec.want.generate) {  // continuous batching: a finished document's slot takes the next
    Decoder dec(engine->decode_engine(), o.batch);
    for (auto& [d, t] : mine) {
      if (plan[d].route == DocRoute::TooLong) {
        store->add(not_computed(d, docs[d], io::doc_status::kFailed, plan[d].error, t.ids));
        finished(d);
        continue;
      }
      GenerationRequest req;
      req.id = static_cast<uint64_t>(d);
      req.prompt = t.ids;
      req.max_new_tokens = o.max_new_tokens;
      req.sampling = o.sampling;
      if (!o.ignore_eos) req.stop_ids = tok->eos_ids();
      dec.submit(std::move(req));
    }
    while (!dec.idle())
      for (const GenerationResult& g : dec.step()) {
        const int64_t d = static_cast<int64_t>(g.id);
        io::DocumentResult r = generation_result(d, docs[d], truncated[d] != 0, g, *tok);
        r.extra["route"] = "data_parallel";
        r.extra["ranks"] = 1;
        store->add(r);
        finished(d);
      }
    mine.clear();
  }
  for (auto& [d, t] : mine) {
    if (plan[d].route == DocRoute::TooLong) {
      if (!o.quiet) std::cerr << "ringscan: warning: " << docs[d].name << ": " << plan[d].error << "\n";
      store->add(not_computed(d, docs[d], io::doc_status::kFailed, plan[d].error, t.ids));
      finished(d);
    } else if (counts[d] > batch_tokens / 2) {
      store_values(d, engine->compute(t.ids, spec.want));
      finished(d);
    } else {
      if (batch_rows + counts[d] > batch_tokens) run_batch();
      batch.push_back(d);
      batch_rows += counts[d];
    }
  }
  run_batch();

  relay.finish(my_docs, my_tokens);
  t_compute = seconds_since(t0) - t_flush;
  t0 = clock::now();
  Json attributes = {{"job", spec.name},
                     {"command_line", command_line(argc, argv)},
                     {"ranks", P},
                     {"device", engine->label()},
                     {"gemm_inputs", engine->gemm_inputs()},
                     {"comm", engine->comm_backend()},
                     {"layout", o.layout},
                     {"model_dir", o.model_dir},
                     {"model_config", c.raw.dump()},
                     {"tokenizer_hash", tok->hash()},
                     {"ringscan_version", RINGSCAN_VERSION}};
  // Which Slurm job wrote the file (recorded only: not part of the run identity, so a
  // resubmitted job, which gets a new id, still resumes).
  for (const auto& [key, var] : {std::pair{"slurm_job_id", "SLURM_JOB_ID"},
                                 std::pair{"slurm_array_task_id", "SLURM_ARRAY_TASK_ID"},
                                 std::pair{"slurm_nodelist", "SLURM_JOB_NODELIST"}})
    if (const char* v = std::getenv(var)) attributes[key] = v;
  cli::check_collectively(*world, [&]() { store->finalize(attributes, found.skipped); });
  t_write = seconds_since(t0) + t_flush;
  progress.finish(total_docs, total_tokens);
  // Slowest rank's seconds per phase: reading+tokenizing, computing (of which
  // blocked in communication), assembling the HDF5 file.
  float timing[4] = {static_cast<float>(t_tokenize), static_cast<float>(t_compute), static_cast<float>(comm_wait),
                     static_cast<float>(t_write)};
  world->all_reduce(timing, 4, comm::ReduceOp::max);
  if (me == 0 && !o.quiet)
    std::fprintf(stderr, "ringscan %s: time (slowest rank): read+tokenize %.2fs, compute %.2fs (communication %.2fs), write %.2fs\n",
                 spec.name.c_str(), timing[0], timing[1], timing[2], timing[3]);
  const io::ResultStore::StatusCounts& n = store->status_counts();
  if (me == 0 && n.failed + n.skipped > 0)  // even with --quiet: the exit status says it, this line says why
    std::fprintf(stderr, "ringscan %s: %llu of %lld documents failed and %llu were skipped (see /documents/status and "
                         "/documents/error in %s); rerunning the same command retries the failed ones\n",
                 spec.name.c_str(), static_cast<unsigned long long>(n.failed), static_cast<long long>(n_docs),
                 static_cast<unsigned long long>(n.skipped), o.out.c_str());
  return exit_status(*store);
}

}  // namespace ringscan
