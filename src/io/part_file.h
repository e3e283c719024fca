// Part files: the per-rank, append-free record of completed documents that the result
// store keeps in `<out>.parts/` while a run is in progress (docs/hdf5-schema.md,
// "Resume"). Each file is written once, atomically, and never changed.
//
// Layout (host byte order, little-endian on every supported machine):
//   header  32 bytes: magic "RSPART03", u64 n_records, u64 payload_bytes,
//                     u64 fnv1a64 of the index table
//   index   n_records x 72 bytes: u64 document index, u64 offset in payload,
//                     u64 length, u64 fnv1a64 of the record, u64 status (0 ok,
//                     1 skipped, 2 failed), 32 bytes SHA-256 of the document's
//                     content (zeros: not known)
//   payload the records, each an encoded DocumentResult (see encode_result; its
//           content_sha256 is in the index only)
// A reader can list a part's documents, their status and content digest from the
// header and index alone (what resuming needs), and read any one record with its own
// checksum.
#pragma once
#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "io/document_result.h"

namespace ringscan::io {

struct PartEntry {
  uint64_t document = 0;
  uint64_t offset = 0;  // from the start of the file
  uint64_t length = 0;
  uint64_t checksum = 0;
  bool failed = false;         // the record's status is doc_status::kFailed
  std::string content_sha256;  // hex, "" = not known
};

std::string encode_result(const DocumentResult& r);
// Throws Error naming `source` when the bytes are not a complete record.
DocumentResult decode_result(std::string_view bytes, const std::string& source);

// The whole part file for these results, in the order given.
std::string encode_part(const std::vector<DocumentResult>& results);

// Reads and checks a part's header and index (not the records).
std::vector<PartEntry> read_part_index(const std::string& path);

// Reads one record and checks its checksum; its content_sha256 comes from the entry.
DocumentResult read_part_record(const std::string& path, const PartEntry& entry);

// A parts folder's first file: its run (format, identity, about, n_documents).
inline constexpr const char* kRunFile = "run.json";
inline constexpr const char* kRunFormat = "ringscan result parts";

// A part file's name, "part-a0003-r00001-000012.bin": the attempt (run) that wrote it,
// the rank, and the rank's sequence number.
struct PartName {
  int attempt = -1;
  int rank = -1;
  uint64_t seq = 0;
};
bool parse_part_name(const std::string& name, PartName& p);
std::string part_name(int attempt, int rank, uint64_t seq);

// Where each document's record is in a parts folder (the result store when it resumes,
// `ringscan inspect` on a run in progress). A document recomputed in a later attempt
// (it changed, or had failed) has records in two parts: the later attempt's wins. Two
// records from one attempt are damage.
struct PartIndex {
  std::vector<std::string> files;                  // part file names
  std::vector<int> attempt;                        // per file
  std::vector<std::pair<uint32_t, PartEntry>> at;  // per document: (file, entry); file = UINT32_MAX if none
};

// A part file that cannot be used, and why (one sentence naming it).
struct DamagedPart {
  std::string name;  // in the parts folder
  std::string why;
};

// Indexes the parts folder `dir` of a run of n_documents. A document in two part files
// of one attempt is damage: it throws, or, when `duplicates` is given, the later file is
// listed there instead. max_attempt (if given): the latest attempt found, -1 for none.
PartIndex scan_parts(const std::string& dir, uint64_t n_documents, int* max_attempt,
                     std::vector<DamagedPart>* duplicates = nullptr);

// Append-only byte encoding shared by part files and the store's gathers.
class ByteWriter {
 public:
  void u8(uint8_t v) { bytes_.push_back(char(v)); }
  void u64(uint64_t v) { raw(&v, sizeof v); }
  void f64(double v) { raw(&v, sizeof v); }
  void str(std::string_view s) {
    u64(s.size());
    bytes_.append(s);
  }
  template <class T>
  void vec(const std::vector<T>& v) {
    u64(v.size());
    raw(v.data(), v.size() * sizeof(T));
  }
  void raw(const void* p, size_t n) { bytes_.append(static_cast<const char*>(p), n); }
  std::string& bytes() { return bytes_; }

 private:
  std::string bytes_;
};

class ByteReader {
 public:
  ByteReader(std::string_view bytes, std::string source) : bytes_(bytes), source_(std::move(source)) {}
  uint8_t u8() { return uint8_t(take(1)[0]); }
  uint64_t u64() { return pod<uint64_t>(); }
  double f64() { return pod<double>(); }
  std::string str() { return std::string(take(count(1))); }
  std::string_view raw(size_t n) { return take(n); }
  template <class T>
  std::vector<T> vec() {
    uint64_t n = count(sizeof(T));
    std::vector<T> v(n);
    std::string_view b = take(n * sizeof(T));
    if (n) std::memcpy(v.data(), b.data(), b.size());
    return v;
  }
  bool done() const { return pos_ == bytes_.size(); }

 private:
  template <class T>
  T pod() {
    T v;
    std::memcpy(&v, take(sizeof(T)).data(), sizeof(T));
    return v;
  }
  uint64_t count(size_t elem) {
    uint64_t n = u64();
    if (elem && n > (bytes_.size() - pos_) / elem) truncated();
    return n;
  }
  std::string_view take(size_t n) {
    if (n > bytes_.size() - pos_) truncated();
    std::string_view v = bytes_.substr(pos_, n);
    pos_ += n;
    return v;
  }
  [[noreturn]] void truncated() const;

  std::string_view bytes_;
  size_t pos_ = 0;
  std::string source_;
};

}  // namespace ringscan::io
