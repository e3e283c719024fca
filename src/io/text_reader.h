// Reading documents' bytes: the content checks discovery leaves out (binary, UTF-8),
// and the text of a codebase document. A job's rank reads only its own documents.
#pragma once
#include <string>
#include <vector>

#include "io/discovery.h"

namespace ringscan::io {

struct ReadResult {
  bool ok = false;
  std::string text;    // the file's bytes, when ok
  std::string reason;  // skip_reason::kBinary / kNonUtf8 / kUnreadable / kEmpty, when not ok
  std::string detail;  // e.g. "invalid UTF-8 at byte 1234"
};

// Reads the whole file and checks it is text:
//   - empty: zero bytes now (it may have changed since discovery);
//   - binary: a NUL byte in the first 8 KiB, or more than 10% of those bytes are
//     control characters other than tab, newline, carriage return, form feed,
//     vertical tab, backspace and escape;
//   - non_utf8: any invalid UTF-8 sequence (RFC 3629: overlong forms, surrogates and
//     code points above U+10FFFF are invalid; a byte-order mark is kept as text);
//   - unreadable: open or read failed (detail: the OS error), or it is no longer a
//     regular file.
// Contents given inline (SourceFile::text) are checked the same way, not read.
ReadResult read_text(const SourceFile& file);
// The checks alone, on bytes already read.
ReadResult check_text(std::string text);

// The line that precedes each file of a codebase document:
//   "### FILE: " + relpath + "\n"
// with '\\' written as "\\\\", a newline as "\\n" and a carriage return as "\\r", so that
// the header is always exactly one line.
std::string codebase_header(const std::string& relpath);

// One file of a loaded document, in document order.
struct LoadedPiece {
  std::string path;           // SourceFile::path
  std::string text;           // codebase: header + content (+ "\n" when the content does
                              // not end with one); file mode: the content, unchanged
  size_t header_bytes = 0;    // length of the header at the start of text (0 in file mode)
  size_t content_bytes = 0;   // the file's own bytes, after the header (without the "\n" added)
};

struct LoadedDocument {
  std::vector<LoadedPiece> pieces;   // files that read as text
  std::vector<SkippedFile> skipped;  // files that did not, path as the user sees it
  // When no piece is left: why (the file's reason in file mode, no_readable_files for a
  // codebase) and a detail; the job then records the document as skipped.
  std::string skip_reason;
  std::string skip_detail;
  // SHA-256 (hex) of what the document is made of, as read: each piece's path and
  // text and each skipped file's path and reason. A result is reused on resume only
  // when the document still has this digest.
  std::string content_sha256;
  bool ok() const { return !pieces.empty(); }
  std::string text() const;          // the pieces concatenated
};

LoadedDocument load_document(const Document& doc);

}  // namespace ringscan::io
