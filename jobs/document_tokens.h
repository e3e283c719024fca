// A loaded document as token ids: BOS (when the tokenizer's config asks for
// it) and then each file's text tokenized on its own, so that every file of a
// codebase document has an exact token range. (Tokenizing files separately can
// differ from tokenizing their concatenation only at the file boundaries,
// which a codebase header line already separates.)
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/text_reader.h"
#include "tokenizer/tokenizer.h"

namespace ringscan {

struct FileRange {
  std::string path;
  int64_t begin = 0, end = 0;  // token positions [begin, end) in the document
};

struct DocumentTokens {
  std::vector<int32_t> ids;
  std::vector<FileRange> files;
  bool truncated = false;  // cut to max_tokens
  std::vector<io::SkippedFile> skipped;  // files of the document that could not be read
};

// max_tokens <= 0: no limit. File ranges are clipped to what is kept.
// with_bos = false leaves BOS out whatever the tokenizer says (a prompt frame places it).
DocumentTokens tokenize_document(const Tokenizer& tok, const io::LoadedDocument& doc, int64_t max_tokens,
                                 bool with_bos = true);

}  // namespace ringscan
