// `ringscan report`: one self-contained HTML page of a result file (docs/cli.md,
// "report"). The page is the template src/io/report/page.html (CSS and JS, no network)
// with the data embedded as JSON: one index of every entry (the ranked list, the
// histogram, the directory overview, the run's attributes) and, per entry with text, a
// separate script element holding its text and heat map, parsed only when the entry is
// opened, so that a codebase of 10 000 files loads quickly.
//
// The pieces below are exposed for tests (tests/io/test_html_report.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/result_reader.h"

namespace ringscan::io::report {

// A row of the page's ranked list: a file of a codebase document, or a document that
// has no /files rows.
struct Entry {
  uint64_t document = 0;
  int64_t file = -1;  // row of /files; -1: the document itself
  std::string path;   // a file's: its document's path joined with the file's
  std::string status; // the document's when not ok, else the file's (ok, truncated, dropped)
  uint64_t n_tokens = 0, n_scored = 0;
  double nll_sum = 0, perplexity = 0;
  std::string summary;  // summarize's generated text ("" when none)
  std::string question;  // ask's question, whose answer summary is ("" when none)
};
std::vector<Entry> entries(const ResultTables& t);

// A run of text with one colour: a token, clipped to the entry's text. A token that ends
// inside a character (byte fallback) is merged with the next ones until one ends on a
// character boundary (the segment shows the sum of their log-probs), so that a segment
// is whole characters; bytes no token covers form segments of their own with no value.
struct Segment {
  uint64_t units = 0;  // length in UTF-16 code units (how the page's JavaScript counts)
  double logprob = 0;  // NaN: no value (not scored, or no token)
};
// The segments covering bytes [begin, end) of the document's text, from its tokens
// [first_token, last_token) (a file's own: its /files token range; the rest are not looked at).
std::vector<Segment> heat_segments(const DocumentTokens& d, uint64_t begin, uint64_t end, uint64_t first_token = 0,
                                   uint64_t last_token = UINT64_MAX);

// Segments as the page reads them: base64 of varint pairs (units, q) with q = 0 for no
// value, else round(-logprob * 100) + 1 (the hover shows the log-prob to 0.01).
std::string encode_segments(const std::vector<Segment>& segments);
std::vector<Segment> decode_segments(const std::string& base64);  // for tests

// Every directory above the entries (relative to their longest common folder), each
// with its parent's index (-1 for the root, index 0) and the totals of its subtree.
struct Directory {
  std::string path;  // "" for the root
  int64_t parent = -1;
  uint64_t files = 0, n_tokens = 0, n_scored = 0;
  double nll_sum = 0;
};
struct DirectoryTree {
  std::string root;                    // the common folder of every entry ("" when none)
  std::vector<Directory> directories;  // parents before children
  std::vector<int64_t> entry_directory;  // per entry, its directory's index
};
DirectoryTree directory_tree(const std::vector<Entry>& entries);

struct PageStats {
  uint64_t bytes = 0, entries = 0, entries_with_text = 0;
};
// Writes the page for `results` (read_result_tables) to `out`, replacing it atomically.
// `written` is when the results were written (shown as the run's date).
PageStats write_page(const std::string& results, const std::string& out);

}  // namespace ringscan::io::report
