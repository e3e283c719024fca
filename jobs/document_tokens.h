// A loaded document as token ids: BOS (when the tokenizer's config asks for
// it) and then each file's text tokenized on its own, so that every file of a
// codebase document has an exact token range. (Tokenizing files separately can
// differ from tokenizing their concatenation only at the file boundaries,
// which a codebase header line already separates.)
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/document_result.h"
#include "io/text_reader.h"
#include "tokenizer/tokenizer.h"

namespace ringscan {

struct FileRange {
  std::string path;
  int64_t begin = 0, end = 0;  // token positions [begin, end) in the document
  std::string header;          // the header text before the file's content ("" in file mode)
  uint64_t text_begin = 0, text_end = 0;  // the file's content (header excluded) in `text`
  std::string status = io::file_status::kOk;  // ok, truncated or dropped (by max_tokens)
};

struct DocumentTokens {
  std::vector<int32_t> ids;
  // The document's text as tokenized (the pieces concatenated; cut after the last kept
  // token when truncated), and each id's bytes [text_begin, text_end) of it (a BOS
  // covers [0, 0)).
  std::string text;
  std::vector<uint64_t> text_begin, text_end;
  std::vector<FileRange> files;  // every file, also those max_tokens dropped
  bool truncated = false;  // cut to max_tokens
  std::vector<io::SkippedFile> skipped;  // files of the document that could not be read
};

// max_tokens <= 0: no limit. File ranges are clipped to what is kept: a file cut
// is `truncated`, one left without tokens `dropped` (empty token and text ranges at the
// end of what is kept).
// with_bos = false leaves BOS out whatever the tokenizer says (a prompt frame places it).
DocumentTokens tokenize_document(const Tokenizer& tok, const io::LoadedDocument& doc, int64_t max_tokens,
                                 bool with_bos = true);

}  // namespace ringscan
