#include "io/text_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "io/utf8_check.h"
#include "util/sha256.h"

namespace ringscan::io {

namespace {

constexpr size_t kSniffBytes = 8192;
// More control characters than this fraction of the first 8 KiB: not text. Text files
// use a few (tabs, form feeds, ANSI escapes in logs); binary formats without NUL bytes
// in their first 8 KiB are rare, but their headers are full of small values.
constexpr double kMaxControlFraction = 0.10;

bool is_text_control(unsigned char c) {
  return c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' || c == '\b' || c == 0x1B;
}

ReadResult fail(const char* reason, std::string detail) {
  ReadResult r;
  r.reason = reason;
  r.detail = std::move(detail);
  return r;
}

}  // namespace

ReadResult read_text(const SourceFile& file) {
  if (file.text) return check_text(*file.text);
  // O_NONBLOCK: a file replaced by a FIFO since discovery must not hang the run.
  int fd = open(file.abs_path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return fail(skip_reason::kUnreadable, std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    int err = errno;
    close(fd);
    return fail(skip_reason::kUnreadable, S_ISREG(st.st_mode) ? std::strerror(err) : "no longer a regular file");
  }
  std::string text;
  text.reserve(size_t(st.st_size));
  char buf[1 << 16];
  while (true) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      close(fd);
      return fail(skip_reason::kUnreadable, std::strerror(err));
    }
    if (n == 0) break;
    text.append(buf, size_t(n));
  }
  close(fd);
  return check_text(std::move(text));
}

ReadResult check_text(std::string text) {
  if (text.empty()) return fail(skip_reason::kEmpty, "0 bytes");
  const size_t sniff = std::min(text.size(), kSniffBytes);
  size_t controls = 0;
  for (size_t i = 0; i < sniff; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == 0) return fail(skip_reason::kBinary, "NUL byte at offset " + std::to_string(i));
    if ((c < 0x20 || c == 0x7F) && !is_text_control(c)) ++controls;
  }
  if (double(controls) > kMaxControlFraction * double(sniff))
    return fail(skip_reason::kBinary, std::to_string(controls) + " of the first " + std::to_string(sniff) +
                                          " bytes are control characters");
  const size_t bad = utf8_invalid_offset(text);
  if (bad != std::string::npos) return fail(skip_reason::kNonUtf8, "invalid UTF-8 at byte offset " + std::to_string(bad));
  ReadResult r;
  r.ok = true;
  r.text = std::move(text);
  return r;
}

std::string codebase_header(const std::string& relpath) {
  std::string h = "### FILE: ";
  for (char c : relpath) {
    if (c == '\\') h += "\\\\";
    else if (c == '\n') h += "\\n";
    else if (c == '\r') h += "\\r";
    else h += c;
  }
  h += '\n';
  return h;
}

std::string LoadedDocument::text() const {
  size_t n = 0;
  for (const LoadedPiece& p : pieces) n += p.text.size();
  std::string out;
  out.reserve(n);
  for (const LoadedPiece& p : pieces) out += p.text;
  return out;
}

LoadedDocument load_document(const Document& doc) {
  LoadedDocument out;
  for (const SourceFile& f : doc.files) {
    ReadResult r = read_text(f);
    std::string shown = f.path;
    if (doc.codebase && doc.name != ".") shown = doc.name + (doc.name.back() == '/' ? "" : "/") + f.path;
    if (!r.ok) {
      out.skipped.push_back({shown, r.reason, r.detail});
      continue;
    }
    LoadedPiece piece;
    piece.path = f.path;
    if (doc.codebase) {
      piece.text = codebase_header(f.path);
      piece.header_bytes = piece.text.size();
      piece.content_bytes = r.text.size();
      piece.text += r.text;
      if (piece.text.back() != '\n') piece.text += '\n';
    } else {
      piece.text = std::move(r.text);
      piece.content_bytes = piece.text.size();
    }
    out.pieces.push_back(std::move(piece));
  }
  // One digest per piece (no second copy of a large text), then one over the list.
  std::string list;
  for (const LoadedPiece& p : out.pieces) list += "piece" + std::string(1, '\0') + p.path + '\0' + ringscan::sha256_hex(p.text) + '\n';
  for (const SkippedFile& sk : out.skipped)
    list += "skipped" + std::string(1, '\0') + sk.path + '\0' + sk.reason + '\0' + sk.detail + '\n';
  out.content_sha256 = ringscan::sha256_hex(list);
  if (out.pieces.empty()) {
    if (!doc.codebase && out.skipped.size() == 1) {
      out.skip_reason = out.skipped[0].reason;
      out.skip_detail = out.skipped[0].detail;
    } else {
      out.skip_reason = skip_reason::kNoReadableFiles;
      out.skip_detail = "all " + std::to_string(doc.files.size()) + " files were skipped";
    }
  }
  return out;
}

}  // namespace ringscan::io
