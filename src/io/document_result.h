// What a job computed for one document: the unit the result store saves, resumes and
// writes to the output file (docs/hdf5-schema.md says how each field is stored).
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "io/discovery.h"
#include "util/json_util.h"

namespace ringscan::io {

// A document's status. Truncation (the job stopped before the document's end, e.g. at
// a token limit) is not a status but the `truncated` flag, so an "ok" document can be
// truncated.
namespace doc_status {
inline constexpr const char* kOk = "ok";            // error is ""
inline constexpr const char* kSkipped = "skipped";  // error is a skip_reason:: value
inline constexpr const char* kFailed = "failed";    // error is one sentence saying why
}  // namespace doc_status

// A codebase file's status: whether --max-tokens kept it whole.
namespace file_status {
inline constexpr const char* kOk = "ok";
inline constexpr const char* kTruncated = "truncated";  // cut by --max-tokens
inline constexpr const char* kDropped = "dropped";      // no tokens left: beyond --max-tokens
}  // namespace file_status

// One file of a codebase document: its tokens are [token_begin, token_end) of the
// document's tokens (header line included).
struct FileResult {
  std::string path;  // relative to the codebase directory
  uint64_t token_begin = 0;
  uint64_t token_end = 0;
  double nll_sum = 0;     // over the scored tokens of the range
  uint64_t n_scored = 0;  // tokens of the range that have a log-prob (not NaN)
  double perplexity = std::numeric_limits<double>::quiet_NaN();  // exp(nll_sum / n_scored)
  std::string status = file_status::kOk;
  std::string header{};  // the exact header text inserted before the file's content ({}: see SourceFile::text)
  // The file's own content (header excluded) in the document's text; begin == end for
  // a dropped file (its content is not in the text).
  uint64_t text_begin = 0, text_end = 0;
};

struct DocumentResult {
  uint64_t index = 0;    // position in the discovery's document list
  std::string path;      // the document's name; "" = take it from the store's list
  std::string status = doc_status::kOk;
  std::string error;     // "" when ok
  bool truncated = false;
  std::vector<int32_t> token_ids;  // n_tokens = token_ids.size()
  // Empty (nothing scored: written as NaN), or one value per token:
  // logprob[t] = log P(token_ids[t] | token_ids[0..t-1]); logprob[0] is NaN (nothing
  // predicts the first token).
  std::vector<float> logprob;
  // The document's text as tokenized (UTF-8; for a codebase, headers included; cut after
  // the last kept token when truncated) and each token's bytes [text_begin, text_end)
  // of it: empty, or one per token. Empty for documents that were not tokenized.
  std::string text;
  std::vector<uint64_t> text_begin, text_end;
  uint64_t n_scored = 0;  // tokens with a log-prob: n_tokens - 1 for a scored document
  double nll_sum = 0;     // -sum of the log-probs, accumulated in double
  double nll_mean = std::numeric_limits<double>::quiet_NaN();    // nll_sum / n_scored
  double perplexity = std::numeric_limits<double>::quiet_NaN();  // exp(nll_mean)
  std::vector<FileResult> files;       // codebase documents; empty otherwise
  std::vector<float> embedding_mean;   // empty = none; else the run's dimension D
  std::vector<float> embedding_last;
  std::vector<SkippedFile> skipped_files;  // files of this document skipped on reading
  Json extra = Json::object();             // free-form (timings, ...); stored as JSON text
  // SHA-256 (hex) of the document's content when it was read (LoadedDocument::
  // content_sha256); "" = not known. A stored result is reused only for the same content.
  std::string content_sha256;
};

}  // namespace ringscan::io
