// JSONL input: one document per line of a .jsonl file (or of stdin with
// --input-format jsonl), a JSON object whose text field holds the document and
// whose id field names it (field names from --jsonl-text and --jsonl-id).
#pragma once
#include <string>
#include <vector>

#include "io/discovery.h"

namespace ringscan::io {

struct JsonlFields {
  std::string id = "id";      // a string or a number; absent: the document is "<source>:<line>"
  std::string text = "text";  // a string; required
};

// The documents of `text`, read from `source` (a path, or "-" for stdin). Blank lines
// are passed by; a record with an empty text is skipped (reason empty). A line that is
// not a JSON object, or lacks the text field or has a non-string one, is an Error naming
// the source, the line and the field.
std::vector<Document> jsonl_documents(const std::string& source, const std::string& text, const JsonlFields& fields,
                                      std::vector<SkippedFile>* skipped);

}  // namespace ringscan::io
