#include "io/html_report.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>

#include "util/error.h"

namespace ringscan {
std::string_view report_page_html();  // src/io/report/page.html, embedded at build time
}

namespace ringscan::io::report {

namespace {

constexpr std::string_view kDataMarker = "<!--RINGSCAN-DATA-->";
constexpr const char* kBase64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

bool continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

std::string join_path(const std::string& dir, const std::string& file) {
  if (dir.empty()) return file;
  return dir.back() == '/' ? dir + file : dir + "/" + file;
}

std::vector<std::string> split_dirs(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t slash; (slash = path.find('/', start)) != std::string::npos; start = slash + 1)
    parts.push_back(path.substr(start, slash - start));
  return parts;  // the last component (the file's name) is left out
}

std::string time_text(time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char b[64];
  std::strftime(b, sizeof b, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return b;
}

// JSON for a <script> element: '<' only occurs inside JSON strings, where \u003c is the
// same character, so no "</script>" or "<!--" can end or change the element.
std::string script_json(const Json& j) {
  const std::string s = j.dump(-1, ' ', false, Json::error_handler_t::replace);
  std::string out;
  out.reserve(s.size() + 64);
  for (char c : s) {
    if (c == '<') out += "\\u003c";
    else out += c;
  }
  return out;
}

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += char((v & 0x7F) | 0x80);
    v >>= 7;
  }
  out += char(v);
}

}  // namespace

std::vector<Entry> entries(const ResultTables& t) {
  std::vector<std::vector<size_t>> files_of(t.documents.size());
  for (size_t f = 0; f < t.files.size(); ++f) files_of[t.files[f].document].push_back(f);
  std::vector<Entry> out;
  for (size_t i = 0; i < t.documents.size(); ++i) {
    const DocumentRow& d = t.documents[i];
    const std::string& summary = d.summary;
    if (files_of[i].empty()) {
      const std::string status = d.status == "ok" && d.truncated ? "truncated" : d.status;
      out.push_back({i, -1, d.path, status, d.n_tokens, d.n_scored, d.nll_sum, d.perplexity, summary, d.question});
      continue;
    }
    for (size_t f : files_of[i]) {
      const FileRow& r = t.files[f];
      out.push_back({i, int64_t(f), join_path(d.path, r.path), d.status == "ok" ? r.status : d.status,
                     r.token_end - r.token_begin, r.n_scored, r.nll_sum, r.perplexity, summary, d.question});
    }
  }
  return out;
}

std::vector<Segment> heat_segments(const DocumentTokens& d, uint64_t begin, uint64_t end, uint64_t first_token,
                                   uint64_t last_token) {
  const std::string& s = d.text;
  end = std::min<uint64_t>(end, s.size());
  begin = std::min(begin, end);
  // Boundaries inside a character move to its end, so that each segment is whole characters.
  auto snap = [&](uint64_t p) {
    p = std::clamp(p, begin, end);
    while (p < end && continuation(s[p])) ++p;
    return p;
  };
  struct ByteSegment {
    uint64_t end;
    double logprob;
  };
  std::vector<ByteSegment> segs;
  uint64_t pos = begin;
  bool open = false;  // the last token ended inside a character: the next one continues its segment
  const double none = std::nan("");
  const uint64_t n = std::min<uint64_t>({d.text_begin.size(), d.text_end.size(), last_token});
  for (uint64_t k = first_token; k < n; ++k) {
    const uint64_t rb = d.text_begin[k], re = d.text_end[k];
    if (rb >= re || re <= begin || rb >= end) continue;  // empty (BOS) or outside the entry
    const double lp = k < d.logprob.size() ? double(d.logprob[k]) : none;
    const uint64_t b = snap(rb), e = snap(re);
    const bool ends_inside = e != std::clamp(re, begin, end);
    if (!open && b > pos) segs.push_back({b, none}), pos = b;  // bytes no token covers
    if (!segs.empty() && (open || b < pos || e <= pos)) {
      segs.back().logprob += lp;
      segs.back().end = std::max(segs.back().end, e);
    } else {
      segs.push_back({e, lp});
    }
    pos = std::max(pos, e);
    open = ends_inside;
  }
  if (pos < end) segs.push_back({end, none});
  std::vector<Segment> out;
  uint64_t at = begin;
  for (const ByteSegment& b : segs) {
    uint64_t units = 0;
    for (; at < b.end; ++at) {
      const unsigned char c = s[at];
      if (!continuation(c)) units += c >= 0xF0 ? 2 : 1;  // 4-byte characters are surrogate pairs in UTF-16
    }
    out.push_back({units, b.logprob});
  }
  return out;
}

std::string encode_segments(const std::vector<Segment>& segments) {
  std::string raw;
  for (const Segment& s : segments) {
    put_varint(raw, s.units);
    const double nats = -s.logprob;
    put_varint(raw, std::isfinite(nats) ? uint64_t(std::llround(std::clamp(nats, 0.0, 1e15) * 100)) + 1 : 0);
  }
  std::string out;
  for (size_t i = 0; i < raw.size(); i += 3) {
    const uint32_t b0 = uint8_t(raw[i]), b1 = i + 1 < raw.size() ? uint8_t(raw[i + 1]) : 0,
                   b2 = i + 2 < raw.size() ? uint8_t(raw[i + 2]) : 0;
    const uint32_t v = b0 << 16 | b1 << 8 | b2;
    out += kBase64[v >> 18];
    out += kBase64[(v >> 12) & 63];
    out += i + 1 < raw.size() ? kBase64[(v >> 6) & 63] : '=';
    out += i + 2 < raw.size() ? kBase64[v & 63] : '=';
  }
  return out;
}

std::vector<Segment> decode_segments(const std::string& base64) {
  std::string raw;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : base64) {
    const char* p = std::strchr(kBase64, c);
    if (c == '=' || !p || !c) break;
    acc = acc << 6 | uint32_t(p - kBase64);
    bits += 6;
    if (bits >= 8) bits -= 8, raw += char((acc >> bits) & 0xFF);
  }
  std::vector<uint64_t> values;
  uint64_t v = 0;
  int shift = 0;
  for (char c : raw) {
    v |= uint64_t(uint8_t(c) & 0x7F) << shift;
    shift += 7;
    if (!(uint8_t(c) & 0x80)) values.push_back(v), v = 0, shift = 0;
  }
  std::vector<Segment> out;
  for (size_t i = 0; i + 1 < values.size(); i += 2)
    out.push_back({values[i], values[i + 1] ? -double(values[i + 1] - 1) / 100 : std::nan("")});
  return out;
}

DirectoryTree directory_tree(const std::vector<Entry>& entries) {
  DirectoryTree t;
  std::vector<std::vector<std::string>> dirs;
  for (const Entry& e : entries) dirs.push_back(split_dirs(e.path));
  size_t common = dirs.empty() ? 0 : dirs[0].size();
  for (const auto& d : dirs) {
    common = std::min(common, d.size());
    for (size_t k = 0; k < common; ++k)
      if (d[k] != dirs[0][k]) common = k;
  }
  for (size_t k = 0; k < common; ++k) t.root += (k ? "/" : "") + dirs[0][k];
  if (common == 1 && dirs[0][0].empty()) t.root = "/";
  t.directories.push_back({"", -1});
  std::map<std::string, int64_t> index{{"", 0}};
  for (size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    int64_t at = 0;
    std::string path;
    std::vector<int64_t> chain{0};
    for (size_t k = common; k < dirs[i].size(); ++k) {
      path += (path.empty() ? "" : "/") + dirs[i][k];
      auto [it, added] = index.emplace(path, int64_t(t.directories.size()));
      if (added) t.directories.push_back({path, at});
      at = it->second;
      chain.push_back(at);
    }
    for (int64_t d : chain) {
      Directory& dir = t.directories[d];
      dir.files += 1;
      dir.n_tokens += e.n_tokens;
      dir.n_scored += e.n_scored;
      if (e.n_scored) dir.nll_sum += e.nll_sum;
    }
    t.entry_directory.push_back(at);
  }
  return t;
}

PageStats write_page(const std::string& results, const std::string& out) {
  const ResultTables t = read_result_tables(results);
  std::error_code ec;
  if (std::filesystem::equivalent(results, out, ec))
    throw Error("--out " + out + " is the result file itself; expected the path of a new .html file");
  const std::vector<Entry> es = entries(t);
  const DirectoryTree tree = directory_tree(es);
  struct stat st {};
  const std::string written = ::stat(results.c_str(), &st) == 0 ? time_text(st.st_mtime) : "";

  // Which entries carry their text and heat map (a script element each): not documents
  // without text (summarize stores none) nor files --max-tokens dropped.
  std::vector<uint8_t> has_payload(es.size());
  for (size_t i = 0; i < es.size(); ++i)
    has_payload[i] = t.has_text && t.documents[es[i].document].text_bytes > 0 && es[i].status != "dropped";

  Json cols = {{"path", Json::array()}, {"doc", Json::array()}, {"status", Json::array()}, {"tokens", Json::array()},
               {"scored", Json::array()}, {"ppl", Json::array()}, {"dir", Json::array()},
               {"summary", Json::array()}, {"text", Json::array()}};
  for (size_t i = 0; i < es.size(); ++i) {
    const Entry& e = es[i];
    cols["path"].push_back(e.path);
    cols["doc"].push_back(e.document);
    cols["status"].push_back(e.status);
    cols["tokens"].push_back(e.n_tokens);
    cols["scored"].push_back(e.n_scored);
    cols["ppl"].push_back(std::isfinite(e.perplexity) ? Json(e.perplexity) : Json());
    cols["dir"].push_back(tree.entry_directory[i]);
    cols["summary"].push_back(e.summary);
    cols["question"].push_back(e.question);
    cols["text"].push_back(has_payload[i]);
  }
  Json dirs = {{"path", Json::array()}, {"parent", Json::array()}, {"files", Json::array()},
               {"tokens", Json::array()}, {"scored", Json::array()}, {"nll", Json::array()}};
  for (const Directory& d : tree.directories) {
    dirs["path"].push_back(d.path);
    dirs["parent"].push_back(d.parent);
    dirs["files"].push_back(d.files);
    dirs["tokens"].push_back(d.n_tokens);
    dirs["scored"].push_back(d.n_scored);
    dirs["nll"].push_back(d.nll_sum);
  }
  Json docs = {{"path", Json::array()}, {"status", Json::array()}, {"error", Json::array()}};
  for (const DocumentRow& d : t.documents) {
    docs["path"].push_back(d.path);
    docs["status"].push_back(d.status);
    docs["error"].push_back(d.error);
  }
  const Json index = {{"source", results},     {"written", written},     {"generated", time_text(std::time(nullptr))},
                      {"attributes", t.attributes}, {"has_text", t.has_text}, {"root", tree.root},
                      {"entries", cols},       {"dirs", dirs},           {"documents", docs}};

  const std::string_view page = report_page_html();
  const size_t marker = page.find(kDataMarker);
  if (marker == std::string_view::npos) throw Error("report: the embedded page has no data marker");  // a build bug
  if (std::filesystem::is_directory(out, ec))
    throw Error("--out " + out + " is a folder; expected the path of an .html file");
  // Written next to `out` under a name no other file has, then renamed over it; removed
  // on failure, so that a failed report leaves nothing behind and replaces nothing.
  std::string tmp = out + ".XXXXXX";
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) throw Error("cannot create " + tmp + " for --out " + out + ": " + std::strerror(errno));
  const mode_t mask = ::umask(0);
  ::umask(mask);
  ::fchmod(fd, 0666 & ~mask);  // as a file the user creates (mkstemp makes it private)
  ::close(fd);
  PageStats stats;
  try {
    std::ofstream os(tmp, std::ios::binary | std::ios::trunc);
    if (!os) throw Error("cannot write " + tmp + " for --out " + out + ": " + std::strerror(errno));
    os << page.substr(0, marker);
    os << "<script type=\"application/json\" id=\"rs-index\">" << script_json(index) << "</script>\n";
    stats.entries = es.size();
    std::optional<ResultTokenReader> reader;
    if (t.has_text) reader.emplace(results, t);
    for (size_t i = 0; i < es.size();) {
      const uint64_t doc = es[i].document;
      size_t j = i;
      while (j < es.size() && es[j].document == doc) ++j;
      bool any = false;
      for (size_t k = i; k < j; ++k) any |= has_payload[k] != 0;
      if (any) {
        const DocumentTokens d = reader->read(doc);
        for (size_t k = i; k < j; ++k) {
          if (!has_payload[k]) continue;
          uint64_t begin = 0, end = d.text.size(), first = 0, last = UINT64_MAX;
          std::string header;
          if (es[k].file >= 0) {
            const FileRow& f = t.files[es[k].file];
            begin = f.text_begin, end = f.text_end, header = f.header, first = f.token_begin, last = f.token_end;
            for (uint64_t p : {begin, end})
              if (p < d.text.size() && continuation(d.text[p]))
                throw Error(results + ": /files row " + std::to_string(es[k].file) + " (" + f.path +
                            "): its text range [" + std::to_string(begin) + ", " + std::to_string(end) +
                            ") starts or ends inside a character");
          }
          const Json payload = {{"t", d.text.substr(begin, end - begin)},
                                {"h", header},
                                {"k", encode_segments(heat_segments(d, begin, end, first, last))}};
          os << "<script type=\"application/json\" id=\"rs-e" << k << "\">" << script_json(payload) << "</script>\n";
          ++stats.entries_with_text;
        }
      }
      i = j;
    }
    os << page.substr(marker + kDataMarker.size());
    os.flush();
    if (!os) throw Error("cannot write " + tmp + " for --out " + out + ": " + std::strerror(errno));
    os.close();
    std::filesystem::rename(tmp, out, ec);
    if (ec) throw Error("cannot rename " + tmp + " to " + out + ": " + ec.message());
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  stats.bytes = std::filesystem::file_size(out);
  return stats;
}

}  // namespace ringscan::io::report
