// Reading back the per-document and per-file tables of a result file (for
// `ringscan inspect`); the file's format is docs/hdf5-schema.md.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "util/json_util.h"

namespace ringscan::io {

struct DocumentRow {
  std::string path, status, error;
  uint64_t n_tokens = 0;
  double perplexity = 0;
  bool truncated = false;
  uint64_t text_bytes = 0;  // 0 when the file stores no text
};

struct FileRow {
  uint64_t document = 0;
  std::string path;
  uint64_t token_begin = 0, token_end = 0;
  double perplexity = 0;
  std::string status = "ok";  // "ok" when the file stores no /files/status
};

struct ResultTables {
  bool has_text = false;  // /text/utf8 and the offsets are stored (docs/hdf5-schema.md)
  std::vector<DocumentRow> documents;
  std::vector<FileRow> files;
  Json attributes = Json::object();  // root attributes, strings and numbers
};

// Throws ringscan::Error naming the file when it is missing or not a ringscan result.
ResultTables read_result_tables(const std::string& path);

}  // namespace ringscan::io
