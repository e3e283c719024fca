// Crash-safe results of a batch job (docs/hdf5-schema.md, "Resume").
//
// While a run is in progress, results live in `<out>.parts/`: a run.json naming the run
// (the caller's identity object, the number of documents and a hash of their names) and
// part files (part_file.h) that each rank writes atomically (tmp, fsync, rename) on
// flush(). The final `<out>` is only assembled by finalize(), from the parts, into
// `<out>.parts/result.h5.tmp` (its space reserved before any row is written, so that a
// full disk is an agreed error on every rank, with the parts intact), which is then
// renamed; the parts folder is removed last. ringscan deletes only what it wrote: a
// parts folder must hold a run.json of its format and only part files, and `<out>` may
// be replaced only when it is a ringscan result file (or a link to one).
// So a run killed at any moment and rerun with the same command skips the documents of
// every part written, loses none of them, duplicates none, and its final file has the
// same bytes as an uninterrupted run's (documents are ordered by index, whatever rank
// computed them, in whichever attempt, and however many ranks finalize).
// A stored result is reused only when its document still has the same content digest
// and its status is not `failed`: a document edited since, or one that failed (e.g.
// too long for the memory budget of that run), is computed again, in a later attempt
// whose part supersedes the old record; the other results are kept. A complete `<out>`
// with such documents is reopened: its other results become part files again.
//
// Call order, on every rank of `comm` (C = collective, every rank must call it):
//   auto store = ResultStore::open(out, identity, overwrite, names, comm);  // C
//   log store->summary() on rank 0;            // new run / resuming k of n / already complete
//   if (store->already_complete()) return;     // same answer on every rank (status_counts() set)
//   for each batch of this rank's documents, skipping store->is_completed(i):
//     store->add(result) for each document (also for skipped or failed ones);
//     store->flush();                           // local, not collective
//   store->finalize(attributes, discovery.skipped);                        // C
//   store->status_counts();                     // how many ok / skipped / failed (every rank)
// Every document index 0..n-1 must have been added by some rank (in this attempt or an
// earlier one) before finalize(). Errors in open() and finalize() are agreed: every
// rank throws the same ringscan::Error (the message of the lowest failing rank),
// including a failure of finalize's parallel HDF5 write (e.g. no space left).
// The output folder must be one that every rank sees (a shared filesystem), as parallel
// HDF5 needs anyway. One run per output path at a time. Results buffered by add() and
// not yet flushed are lost if the store is destroyed without finalize() (as in a crash).
#pragma once
#include <mpi.h>

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "io/document_result.h"

namespace ringscan::io {

class ResultStore {
 public:
  // Collective. Checks the output path, creates or resumes `<out>.parts/`, removes stale
  // temporary files, reads every part whole (spread over the ranks), and lists the
  // completed documents. Throws Error (on every rank) when the output folder does not
  // exist or is not writable, `<out>` is not a regular file or not a ringscan result,
  // `<out>.lock` or `<out>.parts` hold something ringscan did not write, `<out>` or its
  // parts hold a different run and overwrite is false, or a part is damaged and repair
  // is false.
  //   out_path: the final .h5 file; its folder must exist.
  //   identity: what makes results differ (model config, tokenizer hash, options that
  //     change results): any JSON object, compared exactly, stored as the run_identity
  //     attribute.
  //   overwrite: replace the results of a *different* run (other identity or documents)
  //     at out_path or in its parts folder instead of stopping with an error. It never
  //     discards progress of this same run, so rerunning a command that has --overwrite
  //     still resumes, and a complete output of this same run is kept.
  //   document_names: Document::name in discovery order (index = position). Their hash
  //     is part of the run's identity: a changed document list never resumes.
  //   content_sha256: per document, the SHA-256 (hex) of its content as read now
  //     (LoadedDocument::content_sha256), or "" when not known; {} = all unknown. A
  //     stored result whose digest differs is computed again (see the class comment).
  //   about: what names the run for people (e.g. {"model_dir": ...}); never compared,
  //     recorded in run.json and as the run_about attribute, and quoted when another
  //     run's identity differs so that the sentence names both.
  //   repair: drop damaged part files (and a part that repeats a document of its own
  //     attempt) instead of stopping: their documents are computed again.
  // The identity may hold no NaN or infinity (JSON writes both as null).
  static std::unique_ptr<ResultStore> open(const std::string& out_path, const Json& identity, bool overwrite,
                                           const std::vector<std::string>& document_names, MPI_Comm comm,
                                           const std::vector<std::string>& content_sha256 = {},
                                           const Json& about = Json::object(), bool repair = false);

  ResultStore(const ResultStore&) = delete;  // one owner of the buffer and part numbering
  ResultStore& operator=(const ResultStore&) = delete;

  // `<out>` already holds this run's complete results: nothing to compute, finalize()
  // does nothing.
  bool already_complete() const { return complete_; }
  // One line for the log: new run / resuming with k of n done / already complete.
  const std::string& summary() const { return summary_; }

  uint64_t n_documents() const { return names_.size(); }
  // Documents done in earlier attempts (same on every rank), plus those this rank added.
  bool is_completed(uint64_t index) const { return index < done_.size() && done_[index]; }
  std::set<uint64_t> completed() const;
  uint64_t n_completed() const;

  // Buffers one document's result (validated: index in range and not done yet, status,
  // sizes, UTF-8 strings, content digest that of open() or ""). Not durable until flush().
  void add(DocumentResult result);
  // Writes the buffered results as one new part file, atomically. Local to this rank.
  void flush();
  // Collective: flush, check every document is done, write `<out>` (see the class
  // comment), remove the parts folder. A no-op when already_complete().
  //   attributes: root attributes, e.g. {"job": "score", "model_config": "<json>",
  //     "tokenizer_hash": "...", "ringscan_version": "0.1.0", "command_line": "...",
  //     "ranks": 8, "device": "cpu"}; the names format_version, run_identity,
  //     documents_hash and n_documents are the store's own.
  //   discovery_skipped: Discovery::skipped (the same on every rank; rank 0 writes it).
  void finalize(const Json& attributes, const std::vector<SkippedFile>& discovery_skipped = {});

  // After finalize(), or when already_complete(): documents per status, and codebase files
  // cut or dropped by --max-tokens, the same on every rank (the job's exit status comes
  // from it). summary() then says where the file went and these counts.
  struct StatusCounts {
    uint64_t ok = 0, skipped = 0, failed = 0;
    uint64_t files_truncated = 0, files_dropped = 0;  // codebase files, by /files/status
  };
  const StatusCounts& status_counts() const { return status_counts_; }

  const std::string& out_path() const { return out_; }
  std::string parts_dir() const { return out_ + ".parts"; }
  ~ResultStore();

 private:
  ResultStore() = default;

  // Rank 0 holds an exclusive flock on `<out>.lock` from open() to the end of
  // the store, so that two runs never write one output at once (a killed run's
  // lock goes with its process).
  int lock_fd_ = -1;

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  std::string out_;
  static Json run_json(const ResultStore& s);  // the parts folder's run.json

  Json identity_;
  Json about_;
  std::vector<std::string> names_;
  std::vector<std::string> content_;  // per document, "" = not known
  std::string documents_hash_;
  bool complete_ = false;
  std::string summary_;
  std::vector<uint8_t> done_;
  std::vector<uint8_t> needed_;  // not done at open(): this attempt must add them
  StatusCounts status_counts_;
  int attempt_ = 0;
  uint64_t next_part_ = 0;
  std::vector<DocumentResult> buffer_;
  uint64_t dim_mean_ = 0, dim_last_ = 0;  // of this rank's adds (0 = none yet)
};

// "fnv1a64:<hex>" of the document names in order: detects a changed document list.
std::string documents_hash(const std::vector<std::string>& names);

}  // namespace ringscan::io
