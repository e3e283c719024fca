#include "io/part_file.h"

#include <cstdio>

#include "io/fs_util.h"
#include "util/error.h"

namespace ringscan::io {

static_assert(std::endian::native == std::endian::little,
              "part files are written in host byte order; the format documents little-endian");

namespace {

constexpr char kMagic[8] = {'R', 'S', 'P', 'A', 'R', 'T', '0', '3'};
constexpr size_t kHeaderBytes = 32;
constexpr size_t kDigestBytes = 32;
constexpr size_t kEntryBytes = 40 + kDigestBytes;

uint64_t status_code(const std::string& s) {
  return s == doc_status::kOk ? 0 : s == doc_status::kSkipped ? 1 : 2;
}

// Hex digest <-> its 32 bytes; "" <-> zeros.
std::string digest_bytes(const std::string& hex, uint64_t document) {
  std::string raw(kDigestBytes, '\0');
  if (hex.empty()) return raw;
  auto nibble = [&](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    throw Error("result of document " + std::to_string(document) + ": content_sha256 \"" + hex +
                "\" is not 64 lowercase hex digits");
  };
  if (hex.size() != 2 * kDigestBytes) nibble('x');
  for (size_t i = 0; i < kDigestBytes; ++i) raw[i] = char(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  return raw;
}

std::string digest_hex(std::string_view raw) {
  if (raw.find_first_not_of('\0') == std::string_view::npos) return "";
  static const char* digits = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : raw) hex += digits[c >> 4], hex += digits[c & 15];
  return hex;
}

}  // namespace

void ByteReader::truncated() const {
  throw Error(source_ + " is damaged: a record ends early (expected more bytes at offset " + std::to_string(pos_) + ")");
}

std::string encode_result(const DocumentResult& r) {
  ByteWriter w;
  w.u64(r.index);
  w.str(r.path);
  w.str(r.status);
  w.str(r.error);
  w.u8(r.truncated ? 1 : 0);
  w.vec(r.token_ids);
  w.vec(r.logprob);
  w.str(r.text);
  w.vec(r.text_begin);
  w.vec(r.text_end);
  w.u64(r.n_scored);
  w.f64(r.nll_sum);
  w.f64(r.nll_mean);
  w.f64(r.perplexity);
  w.u64(r.files.size());
  for (const FileResult& f : r.files) {
    w.str(f.path);
    w.u64(f.token_begin);
    w.u64(f.token_end);
    w.f64(f.nll_sum);
    w.u64(f.n_scored);
    w.f64(f.perplexity);
    w.str(f.status);
    w.str(f.header);
    w.u64(f.text_begin);
    w.u64(f.text_end);
  }
  w.vec(r.embedding_mean);
  w.vec(r.embedding_last);
  w.u64(r.skipped_files.size());
  for (const SkippedFile& s : r.skipped_files) {
    w.str(s.path);
    w.str(s.reason);
    w.str(s.detail);
  }
  w.str(r.extra.dump());
  return std::move(w.bytes());
}

DocumentResult decode_result(std::string_view bytes, const std::string& source) {
  ByteReader in(bytes, source);
  DocumentResult r;
  r.index = in.u64();
  r.path = in.str();
  r.status = in.str();
  r.error = in.str();
  r.truncated = in.u8() != 0;
  r.token_ids = in.vec<int32_t>();
  r.logprob = in.vec<float>();
  r.text = in.str();
  r.text_begin = in.vec<uint64_t>();
  r.text_end = in.vec<uint64_t>();
  r.n_scored = in.u64();
  r.nll_sum = in.f64();
  r.nll_mean = in.f64();
  r.perplexity = in.f64();
  const uint64_t n_files = in.u64();
  for (uint64_t i = 0; i < n_files; ++i) {
    FileResult f;
    f.path = in.str();
    f.token_begin = in.u64();
    f.token_end = in.u64();
    f.nll_sum = in.f64();
    f.n_scored = in.u64();
    f.perplexity = in.f64();
    f.status = in.str();
    f.header = in.str();
    f.text_begin = in.u64();
    f.text_end = in.u64();
    r.files.push_back(std::move(f));
  }
  r.embedding_mean = in.vec<float>();
  r.embedding_last = in.vec<float>();
  const uint64_t n_skipped = in.u64();
  for (uint64_t i = 0; i < n_skipped; ++i) {
    SkippedFile s;
    s.path = in.str();
    s.reason = in.str();
    s.detail = in.str();
    r.skipped_files.push_back(std::move(s));
  }
  r.extra = parse_json_relaxed(in.str(), source);
  if (!in.done()) throw Error(source + " is damaged: a record has trailing bytes");
  return r;
}

std::string encode_part(const std::vector<DocumentResult>& results) {
  std::vector<std::string> records;
  records.reserve(results.size());
  for (const DocumentResult& r : results) records.push_back(encode_result(r));
  ByteWriter index;
  uint64_t offset = kHeaderBytes + kEntryBytes * records.size();
  uint64_t payload = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    index.u64(results[i].index);
    index.u64(offset);
    index.u64(records[i].size());
    index.u64(fnv1a64(records[i]));
    index.u64(status_code(results[i].status));
    const std::string digest = digest_bytes(results[i].content_sha256, results[i].index);
    index.raw(digest.data(), digest.size());
    offset += records[i].size();
    payload += records[i].size();
  }
  ByteWriter out;
  out.raw(kMagic, sizeof kMagic);
  out.u64(records.size());
  out.u64(payload);
  out.u64(fnv1a64(index.bytes()));
  out.raw(index.bytes().data(), index.bytes().size());
  for (const std::string& rec : records) out.raw(rec.data(), rec.size());
  return std::move(out.bytes());
}

std::vector<PartEntry> read_part_index(const std::string& path) {
  const uint64_t size = file_size(path);
  if (size < kHeaderBytes) throw Error("part file " + path + " is damaged: shorter than its 32-byte header");
  const std::string header = read_file_range(path, 0, kHeaderBytes);
  if (header.compare(0, sizeof kMagic, kMagic, sizeof kMagic) != 0)
    throw Error("part file " + path + " is damaged or from another version of ringscan: it does not start with " +
                std::string(kMagic, sizeof kMagic));
  ByteReader h(std::string_view(header).substr(sizeof kMagic), path);
  const uint64_t n = h.u64(), payload = h.u64(), index_sum = h.u64();
  // Compared by subtraction: a hostile payload size near 2^64 must not wrap around to the file's size.
  if (n > (size - kHeaderBytes) / kEntryBytes || payload != size - kHeaderBytes - n * kEntryBytes)
    throw Error("part file " + path + " is damaged: its size " + std::to_string(size) +
                " does not match its header (" + std::to_string(n) + " records, " + std::to_string(payload) +
                " payload bytes)");
  const std::string index = read_file_range(path, kHeaderBytes, n * kEntryBytes);
  if (fnv1a64(index) != index_sum) throw Error("part file " + path + " is damaged: its index checksum does not match");
  ByteReader in(index, path);
  std::vector<PartEntry> entries(n);
  for (PartEntry& e : entries) {
    e.document = in.u64();
    e.offset = in.u64();
    e.length = in.u64();
    e.checksum = in.u64();
    e.failed = in.u64() == status_code(doc_status::kFailed);
    e.content_sha256 = digest_hex(in.raw(kDigestBytes));
    if (e.offset < kHeaderBytes + n * kEntryBytes || e.offset > size || e.length > size - e.offset)
      throw Error("part file " + path + " is damaged: a record lies outside the file");
  }
  return entries;
}

DocumentResult read_part_record(const std::string& path, const PartEntry& e) {
  const std::string bytes = read_file_range(path, e.offset, e.length);
  if (fnv1a64(bytes) != e.checksum)
    throw Error("part file " + path + " is damaged: the record of document " + std::to_string(e.document) +
                " fails its checksum");
  DocumentResult r = decode_result(bytes, "part file " + path);
  if (r.index != e.document || (r.status == doc_status::kFailed) != e.failed)
    throw Error("part file " + path + " is damaged: its index entry for document " + std::to_string(e.document) +
                " does not match the record it points to");
  r.content_sha256 = e.content_sha256;
  return r;
}

bool parse_part_name(const std::string& n, PartName& p) {
  int a = 0, r = 0;
  unsigned long long s = 0;
  int consumed = 0;
  if (std::sscanf(n.c_str(), "part-a%d-r%d-%llu.bin%n", &a, &r, &s, &consumed) != 3) return false;
  if (size_t(consumed) != n.size()) return false;
  p = {a, r, s};
  return true;
}

std::string part_name(int attempt, int rank, uint64_t seq) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "part-a%04d-r%05d-%06llu.bin", attempt, rank, static_cast<unsigned long long>(seq));
  return buf;
}

PartIndex scan_parts(const std::string& dir, uint64_t n_documents, int* max_attempt,
                     std::vector<DamagedPart>* duplicates) {
  PartIndex idx;
  idx.at.assign(n_documents, {UINT32_MAX, PartEntry{}});
  if (max_attempt) *max_attempt = -1;
  for (const std::string& n : list_dir(dir)) {
    PartName p;
    if (!parse_part_name(n, p)) continue;
    if (max_attempt) *max_attempt = std::max(*max_attempt, p.attempt);
    const uint32_t file = uint32_t(idx.files.size());
    idx.files.push_back(n);
    idx.attempt.push_back(p.attempt);
    for (PartEntry& e : read_part_index(dir + "/" + n)) {
      if (e.document >= n_documents)
        throw Error("part file " + dir + "/" + n + " is damaged: it holds document " + std::to_string(e.document) +
                    " but the run has " + std::to_string(n_documents) + " documents");
      auto& slot = idx.at[e.document];
      if (slot.first != UINT32_MAX) {
        if (idx.attempt[slot.first] == p.attempt) {
          const std::string why = "part file " + dir + "/" + n + " is damaged: its document " +
                                  std::to_string(e.document) + " is also in " + idx.files[slot.first] +
                                  ", of the same attempt";
          if (!duplicates) throw Error(why);
          duplicates->push_back({n, why});
          break;
        }
        if (idx.attempt[slot.first] > p.attempt) continue;  // superseded
      }
      slot = {file, std::move(e)};
    }
  }
  return idx;
}

}  // namespace ringscan::io
