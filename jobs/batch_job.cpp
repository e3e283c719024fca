#include "jobs/batch_job.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>

#include "io/discovery.h"
#include "io/mpi_agree.h"
#include "io/result_store.h"
#include "io/text_reader.h"
#include "jobs/document_tokens.h"
#include "kernels/blas_runtime.h"
#include "jobs/progress.h"
#include "jobs/prompt.h"
#include "jobs/result_rows.h"
#include "jobs/run_identity.h"
#include "runtime/decode.h"
#include "runtime/engine.h"
#include "runtime/mpi_context.h"
#include "runtime/scheduler.h"
#include "runtime/work_progress.h"
#include "tokenizer/tokenizer.h"
#include "util/build_info.h"
#include "util/error.h"

namespace ringscan {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The job's exit status (docs/cli.md): every document ok, or some not.
int exit_status(const io::ResultStore& store) {
  const io::ResultStore::StatusCounts& n = store.status_counts();
  return n.failed + n.skipped == 0 ? 0 : kExitSomeDocumentsNotOk;
}

// The ids of a sequence-parallel document's segments, from the rank that tokenized it
// (its holder). The holder posts every other owner's segment, with the next segment's
// first id (the target of its last position), as soon as this is constructed.
class SegmentsFromHolder {
 public:
  SegmentsFromHolder(comm::Communicator& world, const SequenceLayout& layout, int64_t n, int holder,
                     const std::vector<int32_t>* holder_ids)
      : world_(world), n_(n), holder_(holder), ids_(holder_ids) {
    if (world.rank() != holder) return;
    for (const auto& s : layout.segments) {
      if (s.owner == holder) continue;
      outgoing_.emplace_back(ids_->begin() + s.begin, ids_->begin() + std::min(n, s.end() + 1));
      sends_.push_back(world.isend(outgoing_.back().data(), outgoing_.back().size(), s.owner));
    }
  }
  // This rank's segment s: its ids and the next segment's first id.
  std::vector<int32_t> operator()(const Segment& s) {
    const int64_t len = std::min(n_, s.end() + 1) - s.begin;
    if (world_.rank() == holder_) return std::vector<int32_t>(ids_->begin() + s.begin, ids_->begin() + s.begin + len);
    std::vector<int32_t> ids(len);
    world_.recv(ids.data(), ids.size(), holder_);
    return ids;
  }
  void wait_sent() { comm::wait_all(sends_); }

 private:
  comm::Communicator& world_;
  int64_t n_;
  int holder_;
  const std::vector<int32_t>* ids_;  // the holder's only
  std::vector<comm::Request> sends_;
  std::deque<std::vector<int32_t>> outgoing_;  // stable addresses while the sends are in flight
};

// One run of a batch job, phase by phase, in the order run() calls them. Every
// phase is collective (each rank calls it at the same point) unless it says otherwise.
class BatchRun {
 public:
  BatchRun(const JobSpec& spec, const JobOptions& options);
  int run();

 private:
  // Checks the options, loads the model, tokenizer and engine, builds the prompt frame
  // (summarize) and finds the documents; any failure is agreed on by every rank.
  void load_model_and_find_documents();
  // Every document is read and its content hashed, spread over ranks by size; with the
  // weights' hash this is the run's identity, under which the result store opens (and
  // resumes a killed run). Finished documents are tokenized later only for their length.
  void read_documents_and_open_store();
  std::string agreed_weights_sha256();
  std::vector<std::string> read_documents_and_hash_contents();
  void print_run_start() const;  // rank 0
  // The documents still to compute, tokenized on the rank that read them; every rank
  // learns each one's token count, and that of the finished ones (for the plan).
  void tokenize_pending_documents();
  // Routes (data parallel, sequence parallel, too long) from token counts and the
  // smallest memory budget of any node, the same on every rank.
  void plan_schedule();
  void compute_documents();
  void compute_sequence_parallel_documents();
  void compute_values_sequence_parallel(int64_t d, comm::Communicator* group, const SequenceLayout& layout,
                                        SegmentsFromHolder& segments);
  // Returns the number of tokens generated (0 on ranks outside the group).
  int64_t generate_sequence_parallel(int64_t d, comm::Communicator* group, SegmentsFromHolder& segments);
  void move_values_to_holder(int64_t d, DocumentValues& values);
  // Not collective: each rank runs the documents it tokenized.
  void compute_values_data_parallel();
  void generate_data_parallel();
  GenerationRequest generation_request(int64_t d) const;
  void store_computed(io::DocumentResult r, const char* route, int ranks);
  void flush_store();
  // A data-parallel document of this rank is stored (generated: its new tokens).
  void finished_here(int64_t d, int64_t generated = 0);
  // Positions a document accounts for once finished, and what its generation budget left unused.
  ProgressCounts finished_counts(int64_t d, int64_t generated) const;
  // Rank 0 prints, the others send their counts (data-parallel phase); called as work advances.
  void show_progress();
  ProgressCounts with_work_in_flight(ProgressCounts c) const;
  void write_result_file();
  void print_summary();
  // Rank 0, once: documents (or the --window) longer than config.json's max_position_embeddings.
  void warn_beyond_trained_context() const;
  // Whether document d is scored with a sliding window (--window), on the rank that holds it.
  bool windowed(int64_t d) const { return o_.window > 0 && counts_[d] > o_.window; }

  const JobSpec& spec_;
  const JobOptions& o_;
  std::unique_ptr<comm::MpiCommunicator> world_;
  int P_ = 1, me_ = 0, local_rank_ = 0;

  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tok_;
  std::unique_ptr<Engine> engine_;
  LayoutKind layout_kind_{};
  PromptFrame frame_;
  io::Discovery found_;
  int64_t n_docs_ = 0;

  std::vector<int> reader_;                        // per document: the rank that reads it
  std::map<int64_t, io::LoadedDocument> loaded_;   // documents this rank read
  std::unique_ptr<io::ResultStore> store_;

  std::vector<int> holder_;                 // per document: who tokenized it; -1: done before
  std::map<int64_t, DocumentTokens> mine_;  // documents this rank tokenized and still has to run
  std::vector<int64_t> counts_;             // tokens per document; -1: not to run
  std::vector<int64_t> plan_counts_;        // tokens per document, finished ones too; -1: unreadable
  std::vector<int64_t> truncated_;
  std::vector<DocPlan> plan_;
  int64_t budget_tokens_ = 0;

  // Progress counts token positions: prompts, and generated tokens (jobs/progress.h).
  std::unique_ptr<Progress> progress_;
  std::unique_ptr<ProgressRelay> relay_;  // the other ranks' counts during the data-parallel phase
  int64_t total_docs_ = 0, total_positions_ = 0;
  bool in_sequence_parallel_phase_ = false;
  ProgressCounts sp_done_;  // sequence-parallel documents (every rank counts them, rank 0 shows them)
  ProgressCounts my_done_;  // data-parallel documents this rank ran
  double in_flight_ = 0;    // positions done inside documents not finished yet (runtime/work_progress.h)

  // Where the time goes, per rank (bench/score reports the shares).
  Clock::time_point read_start_, compute_start_;
  double t_tokenize_ = 0, t_compute_ = 0, t_write_ = 0;
  double t_wait_ = 0;     // done, waiting for the other ranks to finish computing
  double comm_wait_ = 0;  // seconds blocked in sequence-parallel communication
  double t_flush_ = 0;    // writing part files (inside the compute phase's time)
};

BatchRun::BatchRun(const JobSpec& spec, const JobOptions& options)
    : spec_(spec), o_(options), world_(comm::MpiCommunicator::create()) {
  P_ = world_->size();
  me_ = world_->rank();
  local_rank_ = comm::local_rank();  // may be collective: every rank, before anything can fail
}

int BatchRun::run() {
  load_model_and_find_documents();
  read_documents_and_open_store();
  if (me_ == 0 && !o_.quiet) print_run_start();
  if (store_->already_complete()) return exit_status(*store_);
  tokenize_pending_documents();
  if (me_ == 0 && !o_.quiet) warn_beyond_trained_context();
  plan_schedule();
  compute_documents();
  write_result_file();
  print_summary();
  return exit_status(*store_);
}

void BatchRun::load_model_and_find_documents() {
  // Stdin reaches rank 0 only (mpirun forwards it there): rank 0 reads it, every rank gets it.
  std::shared_ptr<const std::string> stdin_text;
  if (std::find(o_.inputs.begin(), o_.inputs.end(), "-") != o_.inputs.end()) {
    std::string text;
    if (me_ == 0) text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    io::bcast_bytes(text, 0, MPI_COMM_WORLD);
    stdin_text = std::make_shared<const std::string>(std::move(text));
  }
  check_collectively(*world_, [&]() {
    layout_kind_ = parse_layout(o_.layout);
    check_job_options(spec_, o_, P_);
    if (o_.threads > 0) set_compute_threads(o_.threads);
    model_ = Model::load(o_.model_dir, me_ != 0);
    engine_ = std::make_unique<Engine>(o_.device, o_.comm, local_rank_);
    tok_ = std::make_unique<Tokenizer>(Tokenizer::load(o_.model_dir));
    if (tok_->vocab_size() > model_->config().vocab_size)
      throw Error(o_.model_dir + ": tokenizer.json has " + std::to_string(tok_->vocab_size()) +
                  " ids but the model's vocab_size is " + std::to_string(model_->config().vocab_size));
    if (spec_.want.generate) frame_ = make_prompt_frame(*tok_, o_.prompt);
    io::DiscoveryOptions d;
    d.inputs = o_.inputs;
    d.include = o_.include;
    d.exclude = o_.exclude;
    d.mode = io::parse_document_mode(o_.mode);
    d.use_gitignore = !o_.no_gitignore;
    d.own_output = o_.out;
    d.format = io::parse_input_format(o_.input_format);
    d.jsonl_id = o_.jsonl_id;
    d.jsonl_text = o_.jsonl_text;
    d.stdin_text = stdin_text;
    found_ = io::discover(d);
  });
  check_collectively(*world_, [&]() { engine_->agree(*world_); });
  check_collectively(*world_, [&]() { engine_->prepare(*model_); });
  n_docs_ = static_cast<int64_t>(found_.documents.size());
}

void BatchRun::read_documents_and_open_store() {
  const std::string weights = agreed_weights_sha256();
  read_start_ = Clock::now();
  const std::vector<std::string> content = read_documents_and_hash_contents();
  std::vector<std::string> names;
  for (const auto& d : found_.documents) names.push_back(d.name);
  check_collectively(*world_, [&]() {
    store_ = io::ResultStore::open(o_.out, run_identity(spec_, o_, model_->config(), *tok_, *engine_, weights),
                                   o_.overwrite, names, MPI_COMM_WORLD, content, Json{{"model_dir", o_.model_dir}},
                                   o_.repair);
  });
}

// Same config.json, other weights: other results. Rank 0 hashes them, once per
// checkpoint (io/file_digest.h), and tells the others.
std::string BatchRun::agreed_weights_sha256() {
  std::string weights;
  check_collectively(*world_, [&]() {
    if (me_ == 0) weights = weights_sha256(*model_, o_.quiet, spec_.name);
  });
  weights.resize(64);
  world_->broadcast(weights.data(), weights.size(), 0);
  return weights;
}

// Per document, the SHA-256 of its content (a stored result is reused only for the same
// content); the documents this rank reads stay in loaded_.
std::vector<std::string> BatchRun::read_documents_and_hash_contents() {
  const auto& docs = found_.documents;
  std::vector<uint64_t> sizes;
  for (const auto& d : docs) {
    uint64_t b = 0;
    for (const auto& f : d.files) b += f.bytes;
    sizes.push_back(b);
  }
  reader_ = balance_by_size(sizes, P_);
  std::string my_digests;
  for (int64_t d = 0; d < n_docs_; ++d) {
    if (reader_[d] != me_) continue;
    io::LoadedDocument& l = loaded_[d] = io::load_document(docs[d]);
    my_digests += l.content_sha256;
  }
  const std::vector<std::size_t> digest_bytes = world_->all_gather_counts(my_digests.size());
  std::string all_digests(64 * static_cast<size_t>(n_docs_), '\0');
  world_->all_gather_v(my_digests.data(), all_digests.data(), digest_bytes);
  std::vector<std::string> content(n_docs_);
  std::vector<size_t> cursor(P_, 0);  // rank r's digests arrive in its documents' order
  for (int r = 1; r < P_; ++r) cursor[r] = cursor[r - 1] + digest_bytes[r - 1];
  for (int64_t d = 0; d < n_docs_; ++d) {
    content[d] = all_digests.substr(cursor[reader_[d]], 64);
    cursor[reader_[d]] += 64;
  }
  return content;
}

void BatchRun::print_run_start() const {
  std::cerr << "ringscan " << spec_.name << ": device " << engine_->label()
            << (engine_->why_cpu().empty() ? "" : " (" + engine_->why_cpu() + ")") << ", comm "
            << engine_->comm_backend() << ", " << compute_threads() << " CPU threads per rank\n";
  std::cerr << "ringscan " << spec_.name << ": " << store_->summary() << "\n";
  if (!store_->already_complete())
    for (const auto& s : found_.skipped) std::cerr << io::skip_warning(s) << "\n";
}

void BatchRun::tokenize_pending_documents() {
  const auto& docs = found_.documents;
  holder_.assign(n_docs_, -1);
  for (int64_t d = 0; d < n_docs_; ++d)
    if (!store_->is_completed(static_cast<uint64_t>(d))) holder_[d] = reader_[d];
  counts_.assign(n_docs_, -1);
  plan_counts_.assign(n_docs_, -1);
  truncated_.assign(n_docs_, 0);
  for (auto& [d, l] : loaded_) {
    const bool completed = store_->is_completed(static_cast<uint64_t>(d));
    if (completed && !l.ok()) continue;
    io::LoadedDocument doc = std::move(l);
    if (completed) {  // its length only, so that a resumed run plans as an uninterrupted one
      plan_counts_[d] = static_cast<int64_t>(tokenize_document(*tok_, doc, o_.max_tokens, !spec_.want.generate).ids.size() +
                                             (spec_.want.generate ? frame_.before.size() + frame_.after.size() : 0));
      continue;
    }
    if (!o_.quiet)
      for (const auto& s : doc.skipped) std::cerr << io::skip_warning(s) << "\n";
    if (!doc.ok()) {
      io::DocumentResult r = not_computed(d, docs[d], io::doc_status::kSkipped, doc.skip_reason);
      r.skipped_files = doc.skipped;
      r.extra["detail"] = doc.skip_detail;
      store_->add(r);
      continue;
    }
    DocumentTokens t = tokenize_document(*tok_, doc, o_.max_tokens, !spec_.want.generate);
    t.skipped = std::move(doc.skipped);
    if (spec_.want.generate) {  // the prompt: frame.before + document + frame.after
      t.ids.insert(t.ids.begin(), frame_.before.begin(), frame_.before.end());
      t.ids.insert(t.ids.end(), frame_.after.begin(), frame_.after.end());
      // The frame's tokens are not the document's text: [0, 0) for those before, its end after.
      t.text_begin.insert(t.text_begin.begin(), frame_.before.size(), 0);
      t.text_end.insert(t.text_end.begin(), frame_.before.size(), 0);
      t.text_begin.insert(t.text_begin.end(), frame_.after.size(), t.text.size());
      t.text_end.insert(t.text_end.end(), frame_.after.size(), t.text.size());
      for (auto& f : t.files) f.begin += frame_.before.size(), f.end += frame_.before.size();
    }
    counts_[d] = plan_counts_[d] = static_cast<int64_t>(t.ids.size());
    truncated_[d] = t.truncated;
    mine_.emplace(d, std::move(t));
  }
  loaded_.clear();
  t_tokenize_ = seconds_since(read_start_);
  world_->all_reduce(counts_.data(), counts_.size(), comm::ReduceOp::max);
  world_->all_reduce(plan_counts_.data(), plan_counts_.size(), comm::ReduceOp::max);
  world_->all_reduce(truncated_.data(), truncated_.size(), comm::ReduceOp::max);
  compute_start_ = Clock::now();
}

void BatchRun::warn_beyond_trained_context() const {
  const int64_t trained = model_->config().max_position_embeddings;
  if (trained <= 0) return;
  int64_t longest = 0, beyond = 0;
  for (int64_t d = 0; d < n_docs_; ++d) {
    const int64_t context = o_.window > 0 ? std::min(counts_[d], o_.window) : counts_[d];
    longest = std::max(longest, context);
    beyond += context > trained;
  }
  if (beyond == 0) return;
  std::cerr << "ringscan " << spec_.name << ": warning: "
            << (o_.window > 0 ? "--window " + std::to_string(o_.window) + " gives " + std::to_string(beyond) +
                                    " document(s) more context"
                              : std::to_string(beyond) + " document(s) are longer (the longest: " +
                                    std::to_string(longest) + " tokens)")
            << " than the " << trained << " tokens the model was trained on (max_position_embeddings in "
            << o_.model_dir << "/config.json); values beyond that may be unreliable"
            << (spec_.want.logprobs && !spec_.want.generate && o_.window == 0
                    ? " (--window " + std::to_string(trained) + " scores each token with at most that much context)"
                    : "")
            << "\n";
}

void BatchRun::plan_schedule() {
  // Planned over every document, finished ones included, each on the rank that read it:
  // the speed rule weighs documents against each other, and a resumed run must route
  // (and so compute, to the last bit) each document as the uninterrupted run did.
  ScheduleInput si;
  si.tokens = plan_counts_;
  // A windowed document needs one window's memory at a time, on the rank that holds it.
  if (o_.window > 0)
    for (int64_t& n : si.tokens) n = std::min(n, o_.window);
  si.tokenized_on = reader_;
  si.ranks = P_;
  si.forced_sp = o_.sp;
  // Summarize on GPUs decodes data-parallel documents in batches on the device, faster than
  // a sharded decode of one document at a time: sequence parallel only where memory needs it.
  si.sp_for_speed = !(engine_->on_gpu() && spec_.want.generate);
  const int node_ranks = comm::ranks_on_this_node();  // collective: every rank calls it
  const uint64_t memory = o_.memory_gib > 0 ? static_cast<uint64_t>(o_.memory_gib * (1ull << 30)) : 0;  // 0: the engine's default
  si.budget_tokens = engine_->token_budget(memory, node_ranks, &si.cost);
  // Every rank must plan the same schedule: use the smallest budget of any node.
  int64_t neg_budget = -si.budget_tokens;
  world_->all_reduce(&neg_budget, 1, comm::ReduceOp::max);
  si.budget_tokens = budget_tokens_ = -neg_budget;
  plan_ = schedule_documents(si);
  for (int64_t d = 0; d < n_docs_; ++d)
    if (windowed(d) && plan_[d].route == DocRoute::SequenceParallel) {
      plan_[d].route = DocRoute::DataParallel;
      plan_[d].rank = reader_[d];
      plan_[d].group_size = 1;
    }
}

void BatchRun::compute_documents() {
  // Summarize's total counts every document's whole generation budget until it stops.
  const int64_t budget = spec_.want.generate ? o_.max_new_tokens : 0;
  for (int64_t d = 0; d < n_docs_; ++d)
    if (counts_[d] >= 0) total_positions_ += counts_[d] + budget, ++total_docs_;
  progress_ = std::make_unique<Progress>(spec_.name, total_docs_, total_positions_, me_ == 0 && !o_.quiet,
                                         o_.progress_interval);
  relay_ = std::make_unique<ProgressRelay>();
  ScopedWorkListener listener([this](double positions) {
    in_flight_ += positions;
    show_progress();
  });
  // Long documents first, sequence parallel; then the rest, each rank its own.
  in_sequence_parallel_phase_ = true;
  compute_sequence_parallel_documents();
  in_sequence_parallel_phase_ = false;
  if (spec_.want.generate)
    generate_data_parallel();
  else
    compute_values_data_parallel();
  in_flight_ = 0;
  t_compute_ = seconds_since(compute_start_) - t_flush_;
  // A rank with less work waits here for the others (rank 0 showing their progress):
  // measured as waiting, not as part of the write that follows.
  const auto wait_start = Clock::now();
  relay_->finish(my_done_, [&](const ProgressCounts& all) {
    progress_->update({sp_done_.docs + all.docs, sp_done_.positions + all.positions, sp_done_.unused + all.unused});
  });
  world_->barrier();
  t_wait_ = seconds_since(wait_start);
}

// Every rank walks the sequence-parallel documents in the same order.
void BatchRun::compute_sequence_parallel_documents() {
  for (int64_t d = 0; d < n_docs_; ++d) {
    if (counts_[d] < 0 || plan_[d].route != DocRoute::SequenceParallel) continue;
    const int g = plan_[d].group_size, h = holder_[d];
    auto group = world_->split(me_ < g ? 0 : -1, me_);
    const SequenceLayout layout = make_layout(counts_[d], g, layout_kind_);
    SegmentsFromHolder segments(*world_, layout, counts_[d], h, me_ == h ? &mine_.at(d).ids : nullptr);
    int64_t generated = 0;
    if (spec_.want.generate)
      generated = generate_sequence_parallel(d, group.get(), segments);
    else
      compute_values_sequence_parallel(d, group.get(), layout, segments);
    mine_.erase(d);
    const ProgressCounts c = finished_counts(d, generated);
    sp_done_.docs += c.docs, sp_done_.positions += c.positions, sp_done_.unused += c.unused;
    in_flight_ = 0;
    show_progress();
  }
}

// Group rank 0 (world rank 0) gets the values; the holder writes the row.
void BatchRun::compute_values_sequence_parallel(int64_t d, comm::Communicator* group, const SequenceLayout& layout,
                                                SegmentsFromHolder& segments) {
  DocumentValues values;
  if (group) {
    values = engine_->compute_sp(*group, layout, std::ref(segments), spec_.want);
    for (const auto& [label, t] : group->traffic_by_label()) comm_wait_ += t.wait_seconds;
  }
  segments.wait_sent();
  move_values_to_holder(d, values);
  if (me_ == holder_[d]) {
    store_computed(make_result(d, found_.documents[d], mine_.at(d), values, spec_), "sequence_parallel",
                   plan_[d].group_size);
    flush_store();
  }
}

void BatchRun::move_values_to_holder(int64_t d, DocumentValues& values) {
  const int h = holder_[d];
  if (h == 0) return;
  const int64_t n_lp = spec_.want.logprobs ? counts_[d] : 0;
  const int64_t n_emb = spec_.want.embeddings ? model_->config().hidden_size : 0;
  if (me_ == 0) {
    world_->send(values.logprob.data(), n_lp, h);
    world_->send(values.embedding_mean.data(), n_emb, h);
    world_->send(values.embedding_last.data(), n_emb, h);
  } else if (me_ == h) {
    values.logprob.resize(n_lp);
    values.embedding_mean.resize(n_emb);
    values.embedding_last.resize(n_emb);
    world_->recv(values.logprob.data(), n_lp, 0);
    world_->recv(values.embedding_mean.data(), n_emb, 0);
    world_->recv(values.embedding_last.data(), n_emb, 0);
  }
}

// Every rank of the group decodes together and gets the result; rank 0 stores it.
int64_t BatchRun::generate_sequence_parallel(int64_t d, comm::Communicator* group, SegmentsFromHolder& segments) {
  int64_t generated = 0;
  if (group) {
    ShardedDecoder dec(engine_->sharded_decode_engine(), *group, layout_kind_, 1);
    GenerationRequest req = generation_request(d);
    req.prompt_length = counts_[d];
    req.segment_ids = [&](const Segment& s) {
      auto ids = segments(s);
      ids.resize(s.len);  // the prompt's own ids only
      return ids;
    };
    dec.submit(std::move(req));
    std::vector<GenerationResult> results = dec.run();
    generated = static_cast<int64_t>(results.at(0).tokens.size());
    for (const auto& [label, t] : group->traffic_by_label()) comm_wait_ += t.wait_seconds;
    if (me_ == 0) {
      store_computed(generation_result(d, found_.documents[d], truncated_[d] != 0, results.at(0), *tok_),
                     "sequence_parallel", plan_[d].group_size);
      flush_store();
    }
  }
  segments.wait_sent();
  return generated;
}

// Short documents go in packed batches of up to one prefill block of tokens (their
// per-token GEMMs batched); longer ones alone, prefilled block by block.
void BatchRun::compute_values_data_parallel() {
  const auto& docs = found_.documents;
  const int64_t batch_tokens = model_->block_tokens();
  std::vector<int64_t> batch;
  int64_t batch_rows = 0;
  auto run_batch = [&]() {
    if (batch.empty()) return;
    std::vector<std::vector<int32_t>> seqs;
    for (int64_t d : batch) seqs.push_back(mine_.at(d).ids);
    std::vector<DocumentValues> values = engine_->compute_packed(seqs, spec_.want);
    for (size_t i = 0; i < batch.size(); ++i)
      store_computed(make_result(batch[i], docs[batch[i]], mine_.at(batch[i]), values[i], spec_), "data_parallel", 1);
    for (int64_t d : batch) finished_here(d);
    batch.clear();
    batch_rows = 0;
  };
  for (auto& [d, t] : mine_) {
    if (plan_[d].route == DocRoute::TooLong) {
      if (!o_.quiet) std::cerr << "ringscan: warning: " << docs[d].name << ": " << plan_[d].error << "\n";
      store_->add(not_computed(d, docs[d], io::doc_status::kFailed, plan_[d].error, t));
      finished_here(d);
    } else if (windowed(d)) {
      store_computed(make_result(d, docs[d], t, engine_->compute_windowed(t.ids, o_.window, o_.stride), spec_),
                     "data_parallel", 1);
      finished_here(d);
    } else if (counts_[d] > batch_tokens / 2) {
      store_computed(make_result(d, docs[d], t, engine_->compute(t.ids, spec_.want), spec_), "data_parallel", 1);
      finished_here(d);
    } else {
      if (batch_rows + counts_[d] > batch_tokens) run_batch();
      batch.push_back(d);
      batch_rows += counts_[d];
    }
  }
  run_batch();
  mine_.clear();
}

// Continuous batching: a finished document's slot takes the next.
void BatchRun::generate_data_parallel() {
  const auto& docs = found_.documents;
  Decoder dec(engine_->decode_engine(), o_.batch);
  dec.set_prefill_chunk(o_.prefill_chunk, o_.prefill_overlap);
  if (!dec.prefill_overlap_refused().empty() && !o_.quiet)
    std::cerr << "ringscan: rank " << me_ << ": --prefill-chunk " << o_.prefill_chunk
              << ": no overlap: " << dec.prefill_overlap_refused() << "\n";
  for (auto& [d, t] : mine_) {
    if (plan_[d].route == DocRoute::TooLong) {
      store_->add(not_computed(d, docs[d], io::doc_status::kFailed, plan_[d].error, t));
      finished_here(d);
      continue;
    }
    GenerationRequest req = generation_request(d);
    req.prompt = t.ids;
    dec.submit(std::move(req));
  }
  while (!dec.idle())
    for (const GenerationResult& g : dec.step()) {
      const int64_t d = static_cast<int64_t>(g.id);
      store_computed(generation_result(d, docs[d], truncated_[d] != 0, g, *tok_), "data_parallel", 1);
      finished_here(d, static_cast<int64_t>(g.tokens.size()));
    }
  mine_.clear();
}

GenerationRequest BatchRun::generation_request(int64_t d) const {
  GenerationRequest req;
  req.id = static_cast<uint64_t>(d);
  req.max_new_tokens = o_.max_new_tokens;
  req.sampling = o_.sampling;
  if (!o_.ignore_eos) req.stop_ids = tok_->eos_ids();
  return req;
}

void BatchRun::store_computed(io::DocumentResult r, const char* route, int ranks) {
  r.extra["route"] = route;
  r.extra["ranks"] = ranks;
  store_->add(r);
}

void BatchRun::flush_store() {
  const auto t = Clock::now();
  store_->flush();
  t_flush_ += seconds_since(t);
}

void BatchRun::finished_here(int64_t d, int64_t generated) {
  flush_store();
  const ProgressCounts c = finished_counts(d, generated);
  my_done_.docs += c.docs, my_done_.positions += c.positions, my_done_.unused += c.unused;
  // What the runtime reported of this document while it ran is now in my_done_.
  in_flight_ = std::max(0.0, in_flight_ - static_cast<double>(c.positions));
  show_progress();
}

ProgressCounts BatchRun::finished_counts(int64_t d, int64_t generated) const {
  ProgressCounts c;
  c.docs = 1;
  c.positions = counts_[d] + generated;
  if (spec_.want.generate) c.unused = o_.max_new_tokens - generated;
  return c;
}

ProgressCounts BatchRun::with_work_in_flight(ProgressCounts c) const {
  c.positions += static_cast<int64_t>(in_flight_);
  return c;
}

void BatchRun::show_progress() {
  if (in_sequence_parallel_phase_) {  // the group's layers advance together: rank 0 alone counts them
    if (me_ == 0) progress_->update(with_work_in_flight(sp_done_));
    return;
  }
  relay_->report(with_work_in_flight(my_done_));
  if (me_ != 0) return;
  const ProgressCounts all = relay_->totals();
  progress_->update({sp_done_.docs + all.docs, sp_done_.positions + all.positions, sp_done_.unused + all.unused});
}

void BatchRun::write_result_file() {
  const auto t = Clock::now();
  Json attributes = {{"job", spec_.name},
                     {"command_line", o_.command_line},
                     {"ranks", P_},
                     {"device", engine_->label()},
                     {"gemm_inputs", engine_->gemm_inputs()},
                     {"comm", engine_->comm_backend()},
                     {"layout", o_.layout},
                     {"model_dir", o_.model_dir},
                     {"model_config", model_->config().raw.dump()},
                     {"tokenizer_hash", tok_->hash()},
                     {"ringscan_version", ringscan_version()}};
  add_slurm_job(attributes);  // which Slurm job wrote the file (not part of the run identity)
  check_collectively(*world_, [&]() { store_->finalize(attributes, found_.skipped); });
  t_write_ = seconds_since(t) + t_flush_;
  if (me_ == 0) {
    const ProgressCounts all = relay_->totals();
    progress_->finish({sp_done_.docs + all.docs, sp_done_.positions + all.positions, sp_done_.unused + all.unused});
  }
}

void BatchRun::print_summary() {
  // Slowest rank's seconds per phase: reading+tokenizing, computing (of which
  // blocked in communication), done and waiting for the others, assembling the HDF5 file.
  float timing[5] = {static_cast<float>(t_tokenize_), static_cast<float>(t_compute_), static_cast<float>(comm_wait_),
                     static_cast<float>(t_wait_), static_cast<float>(t_write_)};
  world_->all_reduce(timing, 5, comm::ReduceOp::max);
  if (me_ == 0 && !o_.quiet)
    std::fprintf(stderr,
                 "ringscan %s: time (slowest rank): read+tokenize %.2fs, compute %.2fs (communication %.2fs), "
                 "waiting for other ranks %.2fs, write %.2fs\n",
                 spec_.name.c_str(), timing[0], timing[1], timing[2], timing[3], timing[4]);
  const io::ResultStore::StatusCounts& n = store_->status_counts();
  // Where the file went, and what --max-tokens left out of it (even with --quiet).
  if (me_ == 0 && (!o_.quiet || n.files_truncated + n.files_dropped > 0))
    std::fprintf(stderr, "ringscan %s: %s\n", spec_.name.c_str(), store_->summary().c_str());
  if (me_ == 0 && n.failed + n.skipped > 0)  // even with --quiet: the exit status says it, this line says why
    std::fprintf(stderr, "ringscan %s: %llu of %lld documents failed and %llu were skipped (see /documents/status and "
                         "/documents/error in %s); rerunning the same command retries the failed ones\n",
                 spec_.name.c_str(), static_cast<unsigned long long>(n.failed), static_cast<long long>(n_docs_),
                 static_cast<unsigned long long>(n.skipped), o_.out.c_str());
}

}  // namespace

int run_batch_job(const JobSpec& spec, const JobOptions& options) { return BatchRun(spec, options).run(); }

}  // namespace ringscan
