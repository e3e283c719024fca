// Reading back the per-document and per-file tables of a result file (for
// `ringscan inspect` and `ringscan report`); the file's format is docs/hdf5-schema.md.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/hdf5_util.h"
#include "util/json_util.h"

namespace ringscan::io {

struct DocumentRow {
  std::string path, status, error;
  uint64_t n_tokens = 0;
  double perplexity = 0;
  bool truncated = false;
  uint64_t token_offset = 0, n_scored = 0;
  double nll_sum = 0;
  std::string extra;    // JSON text (summarize: the generation)
  std::string summary;  // summarize's generated text (extra's "text"); "" when none
  std::string question;  // ask's question (extra's "question"): summary is its answer; "" when none
  // Where the document's text is in /text/utf8 (ResultTables::has_text only).
  uint64_t text_offset = 0, text_bytes = 0;
};

struct FileRow {
  uint64_t document = 0;
  std::string path;
  uint64_t token_begin = 0, token_end = 0;
  double perplexity = 0;
  uint64_t n_scored = 0;
  double nll_sum = 0;
  // ResultTables::has_text only: "ok", "truncated" or "dropped" (when --max-tokens cut the
  // codebase), the header inserted before the file, and the file's own content
  // [text_begin, text_end) in its document's text.
  std::string status = "ok", header;
  uint64_t text_begin = 0, text_end = 0;
};

struct ResultTables {
  std::vector<DocumentRow> documents;
  std::vector<FileRow> files;
  Json attributes = Json::object();  // root attributes, strings and numbers
  // /text/utf8 and the offsets are stored (docs/hdf5-schema.md): /documents/text_offset|
  // text_bytes, /tokens/text_begin|text_end, /files/status|header|text_begin|text_end.
  // Files written before issue 16 have none of them: readers then say "no text stored".
  bool has_text = false;
  // read_parts_tables: the run is still in progress; `documents` are those done so far
  // (the run has run_documents), recorded in part_files part files.
  bool in_progress = false;
  uint64_t run_documents = 0, part_files = 0;
};

// Throws ringscan::Error naming the file when it is missing or not a ringscan result.
// The datasets of issue 16 (text and offsets) are optional, but checked when present.
ResultTables read_result_tables(const std::string& path);

// The documents finished so far by a run in progress, from its parts folder
// (`<out>.parts`, docs/hdf5-schema.md "Resume"), in document order; their tokens are not
// read into the tables (ResultTokenReader reads only result files). Attributes: job,
// model_dir and n_documents from its run.json. Error naming the folder when it is not a
// ringscan run's or a part is damaged.
ResultTables read_parts_tables(const std::string& parts_dir);

// One document's per-token values and text, for a file read_result_tables accepted.
struct DocumentTokens {
  std::vector<float> logprob;                   // NaN where nothing was scored
  std::vector<uint64_t> text_begin, text_end;   // empty without has_text
  std::string text;                             // "" without has_text
};

// Reads documents of one result file a document at a time (the report streams them).
class ResultTokenReader {
 public:
  ResultTokenReader(const std::string& path, const ResultTables& tables);
  // Error when a token's byte range lies outside the document's text or the text is
  // not UTF-8 (a damaged file), naming the file, document and token.
  DocumentTokens read(uint64_t document) const;

 private:
  std::string path_;
  const ResultTables& tables_;
  h5::Id file_;
};

}  // namespace ringscan::io
