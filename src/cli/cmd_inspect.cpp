// ringscan inspect FILE.h5: a result file's documents (path, tokens, perplexity, status,
// summary) as a table, CSV or JSON lines, sorted by a chosen column, with per-file rows
// under each codebase document; or, while a run is still writing FILE.h5, the documents
// it has finished so far (from FILE.h5.parts).
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <numeric>

#include "cli/command.h"
#include "io/fs_util.h"
#include "io/result_reader.h"
#include "util/error.h"

namespace po = boost::program_options;

namespace ringscan::cli {
namespace {

std::string fmt_ppl(double p) {
  if (std::isnan(p)) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.3f", p);
  return b;
}

// Characters on a terminal: UTF-8 code points (wide characters count as one).
size_t columns_of(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// The byte offset after `count` code points of s (s.size() when shorter).
size_t bytes_of_columns(const std::string& s, size_t count) {
  size_t i = 0;
  for (size_t seen = 0; i < s.size(); ++i) {
    if ((uint8_t(s[i]) & 0xC0) != 0x80 && seen++ == count) break;
  }
  return i;
}

std::string pad(const std::string& s, size_t width) {
  const size_t n = columns_of(s);
  return n >= width ? s : s + std::string(width - n, ' ');
}

// `text` in lines of at most `width` columns, broken after a '/' (paths) or a space
// where one falls in the second half of the line, else at the width.
std::vector<std::string> wrap(const std::string& text, size_t width) {
  std::vector<std::string> lines;
  std::string rest = text;
  while (columns_of(rest) > width) {
    size_t cut = bytes_of_columns(rest, width);
    const size_t half = bytes_of_columns(rest, width / 2);
    const size_t nice = rest.find_last_of("/ ", cut - 1);
    if (nice != std::string::npos && nice >= half) cut = nice + 1;
    std::string line = rest.substr(0, cut);
    while (line.size() > 1 && line.back() == ' ') line.pop_back();  // the space a line was broken at
    lines.push_back(line);
    rest = rest.substr(cut);
  }
  lines.push_back(rest);
  return lines;
}

// One line of a table: control characters as escapes (a path may hold a newline).
std::string one_line(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '\n' ? std::string("\\n") : c == '\r' ? std::string("\\r") : c == '\t' ? std::string(" ") : std::string(1, c);
  return out;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

Json json_number_or_null(double v) { return std::isfinite(v) ? Json(v) : Json(); }

// The width of the terminal the table goes to (COLUMNS, else the tty's, else 100).
size_t terminal_width() {
  if (const char* c = std::getenv("COLUMNS"); c && std::atoi(c) > 0) return size_t(std::atoi(c));
  winsize ws{};
  if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 100;
}

// A result file, or the parts folder of a run still writing it.
io::ResultTables read_tables(const std::string& file) {
  if (io::path_exists(file) && !io::is_directory(file)) return io::read_result_tables(file);
  if (io::is_directory(file)) return io::read_parts_tables(file);
  if (io::is_directory(file + ".parts")) return io::read_parts_tables(file + ".parts");
  return io::read_result_tables(file);  // says that it does not exist
}

// "documents 4 (ok 3, failed 1), tokens 1234, perplexity mean 5.210 median 4.800 (3 scored)".
std::string aggregate_line(const io::ResultTables& t) {
  uint64_t tokens = 0, ok = 0, skipped = 0, failed = 0;
  std::vector<double> ppl;
  for (const auto& d : t.documents) {
    tokens += d.n_tokens;
    ok += d.status == "ok", skipped += d.status == "skipped", failed += d.status == "failed";
    if (std::isfinite(d.perplexity)) ppl.push_back(d.perplexity);
  }
  std::string s = "documents " + std::to_string(t.documents.size()) + " (ok " + std::to_string(ok);
  if (skipped) s += ", skipped " + std::to_string(skipped);
  if (failed) s += ", failed " + std::to_string(failed);
  s += "), tokens " + std::to_string(tokens) + ", perplexity ";
  if (ppl.empty()) return s + "- (no document scored)";
  std::sort(ppl.begin(), ppl.end());
  const size_t m = ppl.size();
  const double median = m % 2 ? ppl[m / 2] : (ppl[m / 2 - 1] + ppl[m / 2]) / 2;
  const double mean = std::accumulate(ppl.begin(), ppl.end(), 0.0) / double(m);
  return s + "mean " + fmt_ppl(mean) + " median " + fmt_ppl(median) + " (of " + std::to_string(m) + " scored)";
}

int run_inspect(int argc, char** argv) {
  std::string file, sort = "path", format = "table";
  bool desc = false, no_files = false;
  int64_t limit = 0;
  po::options_description opts(
      "ringscan inspect FILE.h5: the documents of a result file (or of a run still writing it: FILE.h5.parts)");
  opts.add_options()("help,h", "this help")
      ("file", po::value(&file)->required(), "result file (also the first positional argument)")
      ("sort", po::value(&sort)->default_value("path"), "column to sort by: path, tokens, perplexity, status")
      ("desc", po::bool_switch(&desc), "sort descending (documents without a perplexity stay last)")
      ("limit", po::value(&limit)->default_value(0), "show at most this many documents (0: all)")
      ("no-files", po::bool_switch(&no_files), "omit the per-file rows of codebase documents")
      ("format", po::value(&format)->default_value("table"),
       "table (for people; wraps long paths, ends with totals), csv or jsonl (one row per document and per file)");
  po::positional_options_description pos;
  pos.add("file", 1);
  po::variables_map vm;
  if (!parse_options(argc, argv, opts, vm, &pos)) return 0;
  if (sort != "path" && sort != "tokens" && sort != "perplexity" && sort != "status")
    throw Error("--sort must be path, tokens, perplexity or status, got \"" + sort + "\"");
  if (format != "table" && format != "csv" && format != "jsonl")
    throw Error("--format must be table, csv or jsonl, got \"" + format + "\"");

  const io::ResultTables t = read_tables(file);
  std::vector<size_t> order(t.documents.size());
  std::iota(order.begin(), order.end(), 0);
  auto key_less = [&](size_t a, size_t b) {
    const auto &x = t.documents[a], &y = t.documents[b];
    if (sort == "tokens") return x.n_tokens < y.n_tokens;
    if (sort == "status") return x.status < y.status;
    if (sort == "perplexity") return x.perplexity < y.perplexity;
    return x.path < y.path;
  };
  // NaN (not scored) rows go last in either direction.
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const bool na = std::isnan(t.documents[a].perplexity), nb = std::isnan(t.documents[b].perplexity);
    if (na != nb) return nb;
    return desc ? key_less(b, a) : key_less(a, b);
  });
  if (limit > 0 && size_t(limit) < order.size()) order.resize(size_t(limit));
  std::vector<std::vector<size_t>> files_of(t.documents.size());
  for (size_t f = 0; f < t.files.size(); ++f) files_of[t.files[f].document].push_back(f);

  if (format == "csv") {
    std::printf("kind,document,path,tokens,perplexity,status,error,truncated,summary\n");
    for (size_t i : order) {
      const auto& d = t.documents[i];
      std::printf("document,%s,%s,%llu,%s,%s,%s,%d,%s\n", csv_field(d.path).c_str(), csv_field(d.path).c_str(),
                  (unsigned long long)d.n_tokens, std::isnan(d.perplexity) ? "" : fmt_ppl(d.perplexity).c_str(),
                  d.status.c_str(), csv_field(d.error).c_str(), int(d.truncated), csv_field(d.summary).c_str());
      if (!no_files)
        for (size_t f : files_of[i]) {
          const auto& r = t.files[f];
          std::printf("file,%s,%s,%llu,%s,%s,,,\n", csv_field(d.path).c_str(), csv_field(r.path).c_str(),
                      (unsigned long long)(r.token_end - r.token_begin),
                      std::isnan(r.perplexity) ? "" : fmt_ppl(r.perplexity).c_str(), r.status.c_str());
        }
    }
    return 0;
  }
  if (format == "jsonl") {
    auto line = [](const Json& j) { std::puts(j.dump(-1, ' ', false, Json::error_handler_t::replace).c_str()); };
    for (size_t i : order) {
      const auto& d = t.documents[i];
      Json j = {{"kind", "document"}, {"path", d.path}, {"tokens", d.n_tokens},
                {"perplexity", json_number_or_null(d.perplexity)}, {"status", d.status}, {"error", d.error},
                {"truncated", d.truncated}};
      if (!d.question.empty()) j["question"] = d.question;
      if (!d.summary.empty()) j["summary"] = d.summary;
      line(j);
      if (!no_files)
        for (size_t f : files_of[i]) {
          const auto& r = t.files[f];
          line({{"kind", "file"}, {"document", d.path}, {"path", r.path}, {"tokens", r.token_end - r.token_begin},
                {"perplexity", json_number_or_null(r.perplexity)}, {"status", r.status}});
        }
    }
    return 0;
  }

  // The table: the path column takes what the other columns leave of the terminal.
  const size_t width = std::max<size_t>(terminal_width(), 60);
  const size_t path_w = width - 42;
  if (t.in_progress)
    std::printf("%s: run in progress: %zu of %llu documents done (%llu part files), job %s, model %s\n", file.c_str(),
                t.documents.size(), (unsigned long long)t.run_documents, (unsigned long long)t.part_files,
                t.attributes.value("job", std::string("?")).c_str(),
                t.attributes.value("model_dir", std::string("?")).c_str());
  else
    std::printf("%s: %zu documents, job %s, model %s\n", file.c_str(), t.documents.size(),
                t.attributes.value("job", std::string("?")).c_str(),
                t.attributes.value("model_dir", std::string("?")).c_str());
  std::printf("%s %10s %12s  %s\n", pad("path", path_w).c_str(), "tokens", "perplexity", "status");
  auto row = [&](const std::string& indent, const std::string& path, uint64_t tokens, double ppl,
                 const std::string& status) {
    const std::vector<std::string> lines = wrap(one_line(path), path_w - indent.size());
    std::printf("%s %10llu %12s  %s\n", pad(indent + lines[0], path_w).c_str(), (unsigned long long)tokens,
                fmt_ppl(ppl).c_str(), status.c_str());
    for (size_t k = 1; k < lines.size(); ++k) std::printf("%s  %s\n", indent.c_str(), lines[k].c_str());
  };
  for (size_t i : order) {
    const auto& d = t.documents[i];
    row("", d.path, d.n_tokens, d.perplexity,
        d.status + (d.truncated ? " (truncated)" : "") + (d.error.empty() ? "" : ": " + d.error));
    // A summary (ask: the question, then its answer) under its document, each of its
    // paragraphs wrapped to the table.
    auto paragraphs = [&](const std::string& label, const std::string& text) {
      bool first = true;
      for (size_t at = 0; !text.empty() && at <= text.size();) {
        size_t nl = text.find('\n', at);
        if (nl == std::string::npos) nl = text.size();
        for (const std::string& l : wrap(one_line(text.substr(at, nl - at)), width - 13))
          std::printf("  %s%s\n", first ? label.c_str() : std::string(label.size(), ' ').c_str(), l.c_str()),
              first = false;
        at = nl + 1;
      }
    };
    paragraphs("question: ", d.question);
    paragraphs(d.question.empty() ? "summary: " : "answer: ", d.summary);
    if (no_files) continue;
    for (size_t f : files_of[i]) {
      const auto& r = t.files[f];
      row("  ", r.path, r.token_end - r.token_begin, r.perplexity, r.status == "ok" ? "" : r.status);
    }
  }
  std::printf("%s%s\n", t.in_progress ? "so far: " : "total: ", aggregate_line(t).c_str());
  return 0;
}

}  // namespace

RINGSCAN_COMMAND("inspect", "a result file's documents as a table, CSV or JSON lines; a run in progress", run_inspect);

}  // namespace ringscan::cli
