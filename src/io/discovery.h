// Finding the documents a batch job runs over. See docs/hdf5-schema.md ("Inputs") for
// the user-facing rules; in short:
//   - inputs are files, directories (walked recursively, following symbolic links) and
//     `@list.txt` files (one path per line; blank lines and lines starting with '#' are
//     ignored; surrounding spaces trimmed; relative paths are relative to the list's folder);
//   - `file` mode: one document per file; `codebase` mode: one document per input
//     directory (its files sorted bytewise by relative path), and each file named
//     directly (on the command line or in a list) is its own document;
//   - inside directories: `.git` is never entered, `.gitignore` files are honoured
//     (unless use_gitignore is false), then --exclude / --include globs (glob.h) filter
//     what is left. A glob without '/' matches a name at any depth; one with '/' matches
//     the whole path relative to the input directory. A directory matching --exclude is
//     not entered; a file is kept when it or one of its parent folders (relative to the
//     input directory) matches an --include glob (all files when there is none). Globs
//     do not filter files named directly;
//   - discovery only looks at metadata (stat). Files it cannot use are skipped with a
//     reason (SkipReason); reading the bytes, and the skips that needs, is read_text's
//     job (text_reader.h), so that ranks can share the reading;
//   - the run's own output (own_output, the --out file) and the files ringscan keeps next
//     to it (`<out>.parts/`, `<out>.lock`, `<out>.tmp`) are never documents: a walk passes
//     them by (so that a rerun finds the same documents), and naming one as an input is
//     an error;
//   - an input named directly that does not exist (or is a broken link, a link loop or
//     neither a file nor a directory) is an error: ringscan::Error, one sentence.
// The result is deterministic: inputs in the order given, files inside a directory
// sorted bytewise by relative path; a path reached twice becomes one document.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ringscan::io {

enum class DocumentMode { File, Codebase };

// "file" or "codebase"; anything else is an Error naming the option value.
DocumentMode parse_document_mode(const std::string& name);

// How input files are read: auto (a file named *.jsonl is JSONL, anything else text),
// text, or jsonl (every file, and stdin, is JSONL: jsonl_input.h). Anything else is an
// Error naming the option value.
enum class InputFormat { Auto, Text, Jsonl };
InputFormat parse_input_format(const std::string& name);

struct DiscoveryOptions {
  std::vector<std::string> inputs;   // files, directories, "@list.txt", "-" (stdin)
  std::vector<std::string> include;  // empty: every file
  std::vector<std::string> exclude;
  DocumentMode mode = DocumentMode::File;
  bool use_gitignore = true;
  std::string own_output;  // the run's --out file ("" = none): never a document, nor what is next to it
  InputFormat format = InputFormat::Auto;
  std::string jsonl_id = "id", jsonl_text = "text";  // JSONL field names
  // What the job read from stdin, for an input "-": one document named "-" (or JSONL
  // records). Null: no "-" input is allowed.
  std::shared_ptr<const std::string> stdin_text;
};

struct SourceFile {
  // As reported: relative to the input directory for a file of a codebase document,
  // else the document's name (the path as given, or input directory / relative path).
  std::string path;
  std::string abs_path;  // absolute path to open (not resolved through symbolic links)
  uint64_t bytes = 0;    // size when discovered
  // The contents when they came with the input (stdin, a JSONL record): then abs_path is
  // "" and the text is checked as a file's would be, not read again. ({}: aggregate
  // initialisers may leave it out without -Wmissing-field-initializers.)
  std::shared_ptr<const std::string> text{};
};

struct Document {
  std::string name;        // the file, or the input directory of a codebase document
  bool codebase = false;   // files are concatenated behind codebase_header() lines
  std::vector<SourceFile> files;  // one file unless codebase; never empty
};

// Machine-readable skip reasons (stored in the output's /skipped/reason).
namespace skip_reason {
inline constexpr const char* kBinary = "binary";                  // NUL bytes or mostly control bytes in the first 8 KiB
inline constexpr const char* kNonUtf8 = "non_utf8";               // invalid UTF-8 anywhere in the file
inline constexpr const char* kUnreadable = "unreadable";          // open/read/opendir failed (detail: the OS error)
inline constexpr const char* kEmpty = "empty";                    // zero bytes
inline constexpr const char* kBrokenSymlink = "broken_symlink";   // link target does not exist
inline constexpr const char* kSymlinkLoop = "symlink_loop";       // links that point at each other
inline constexpr const char* kDirectoryCycle = "directory_cycle"; // a link back to a folder being walked
inline constexpr const char* kNotRegularFile = "not_regular_file";// FIFO, socket, device
inline constexpr const char* kNonUtf8Name = "non_utf8_name";      // path is not UTF-8 (reported with U+FFFD)
inline constexpr const char* kDuplicate = "duplicate";            // same path already a document
inline constexpr const char* kNoFiles = "no_files";               // an input directory with no usable file
inline constexpr const char* kNoReadableFiles = "no_readable_files";  // codebase whose every file was skipped on reading
}  // namespace skip_reason

struct SkippedFile {
  std::string path;    // as reported to the user; always valid UTF-8
  std::string reason;  // one of skip_reason::*
  std::string detail;  // human-readable specifics (offset, OS error, ...)
};

struct Discovery {
  std::vector<Document> documents;
  std::vector<SkippedFile> skipped;
};

// Walks the inputs. Throws ringscan::Error for a missing input, an unreadable list file
// or an invalid option; skips never stop it.
Discovery discover(const DiscoveryOptions& options);

// The one warning line for a skip, e.g.
// "ringscan: warning: skipping data/x.bin: binary file (NUL byte at offset 12)".
std::string skip_warning(const SkippedFile& skip);

}  // namespace ringscan::io
