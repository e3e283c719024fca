// The data behind `ringscan report`'s page, without a browser (the page itself is
// tested in tests/jobs/test_report.py): reading a document's text and token offsets, the ranked entries, heat map segments (clipping, characters split over two
// tokens, UTF-16 lengths), their encoding, and the directory tree.
#include <gtest/gtest.h>

#include <cmath>

#include "io/html_report.h"
#include "io/result_reader.h"
#include "io_test_util.h"
#include "result_file_builder.h"
#include "util/error.h"

namespace ringscan::io {
namespace {

using test::ColumnSpec;
using test::ColumnType;
using test::ResultFileSpec;

#define EXPECT_CONTAINS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

std::string read_error(const ResultFileSpec& spec, bool tokens_of_doc0 = false) {
  test::TempDir t;
  const std::string path = t / "r.h5";
  spec.write(path);
  try {
    const ResultTables tables = read_result_tables(path);
    if (tokens_of_doc0) ResultTokenReader(path, tables).read(0);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ResultReaderText, TextAndOffsetsReadBack) {
  test::TempDir t;
  ResultFileSpec::valid_with_text(3).write(t / "r.h5");
  const ResultTables r = read_result_tables(t / "r.h5");
  EXPECT_TRUE(r.has_text);
  EXPECT_EQ(r.documents[2].text_offset, 6u);
  EXPECT_EQ(r.files[0].header, "### FILE: a.py\n");
  const DocumentTokens d = ResultTokenReader(t / "r.h5", r).read(2);
  EXPECT_EQ(d.text, "abc");
  EXPECT_EQ(d.text_end, (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(d.logprob.size(), 3u);
  // Older files: no text, and still read.
  ResultFileSpec::valid(3).write(t / "old.h5");
  const ResultTables old = read_result_tables(t / "old.h5");
  EXPECT_FALSE(old.has_text);
  EXPECT_TRUE(ResultTokenReader(t / "old.h5", old).read(1).text.empty());
}

TEST(ResultReaderText, SummariesComeFromExtra) {
  test::TempDir t;
  ResultFileSpec s = ResultFileSpec::valid(4);
  s.column("/documents/extra").strings = {R"({"text": "A summary.", "finish_reason": "stop"})", "not JSON",
                                          R"({"text": 3})", "[1]"};
  s.write(t / "r.h5");
  const ResultTables r = read_result_tables(t / "r.h5");
  EXPECT_EQ(r.documents[0].summary, "A summary.");
  for (int i : {1, 2, 3}) EXPECT_EQ(r.documents[i].summary, "") << i;
}

// (tests/io/test_result_reader.cpp checks the datasets' presence, shapes and ranges.)
TEST(ResultReaderText, DamagedTokenOffsetsAreRefused) {
  ResultFileSpec s = ResultFileSpec::valid_with_text(3);
  s.column("/tokens/text_end").numbers[2] = 4;
  EXPECT_CONTAINS(read_error(s, true), "document 0 (doc0.txt): token 2 covers bytes [2, 4)");
  s = ResultFileSpec::valid_with_text(3);
  s.column("/tokens/text_begin").numbers[1] = 2;
  s.column("/tokens/text_end").numbers[1] = 1;
  EXPECT_CONTAINS(read_error(s, true), "token 1 covers bytes [2, 1)");
  s = ResultFileSpec::valid_with_text(3);
  s.column("/text/utf8").numbers[1] = 0xC3;  // "a\xC3c": a cut character
  EXPECT_CONTAINS(read_error(s, true), "its text in /text/utf8 is not valid UTF-8 at byte 1");
  EXPECT_EQ(read_error(ResultFileSpec::valid_with_text(3), true), "(no error)");
}

// Text "a🙂é\nb" (bytes: a 0, 🙂 1-4, é 5-6, \n 7, b 8) with its tokens.
DocumentTokens sample(std::vector<std::pair<uint64_t, uint64_t>> spans, std::vector<float> lp) {
  DocumentTokens d;
  d.text = "a\xF0\x9F\x99\x82\xC3\xA9\nb";
  for (auto [b, e] : spans) d.text_begin.push_back(b), d.text_end.push_back(e);
  d.logprob = std::move(lp);
  return d;
}

TEST(ReportHeat, SegmentsAreTokensInUtf16Units) {
  const float nan = std::nanf("");
  const DocumentTokens d = sample({{0, 0}, {0, 1}, {1, 5}, {5, 7}, {7, 8}, {8, 9}}, {nan, -1, -2, -3, -4, -5});
  const auto s = report::heat_segments(d, 0, 9);
  ASSERT_EQ(s.size(), 5u);  // BOS covers nothing
  EXPECT_EQ(s[0].units, 1u);
  EXPECT_EQ(s[1].units, 2u);  // a 4-byte character is a surrogate pair
  EXPECT_EQ(s[2].units, 1u);
  EXPECT_DOUBLE_EQ(s[1].logprob, -2);
  EXPECT_DOUBLE_EQ(s[4].logprob, -5);
}

TEST(ReportHeat, ATokenEndingInsideACharacterIsMergedWithItsNeighbour) {
  // Byte fallback: 🙂 is two tokens of 2 bytes; é is split 1 + (1 byte and the newline).
  const DocumentTokens d = sample({{0, 1}, {1, 3}, {3, 5}, {5, 6}, {6, 8}, {8, 9}}, {-1, -2, -3, -4, -5, -6});
  const auto s = report::heat_segments(d, 0, 9);
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[1].units, 2u);
  EXPECT_DOUBLE_EQ(s[1].logprob, -5);  // -2 + -3
  EXPECT_EQ(s[2].units, 2u);           // "é\n"
  EXPECT_DOUBLE_EQ(s[2].logprob, -9);
  uint64_t units = 0;
  for (const auto& x : s) units += x.units;
  EXPECT_EQ(units, 6u);  // "a🙂é\nb" in UTF-16
}

TEST(ReportHeat, TokensAreClippedToTheFileAndGapsHaveNoValue) {
  // The file is bytes [1, 8) (🙂é\n); the first token covers "a🙂", the last "\nb".
  const DocumentTokens d = sample({{0, 5}, {5, 7}, {7, 9}}, {-1, -2, -3});
  auto s = report::heat_segments(d, 1, 8);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].units, 2u);
  EXPECT_DOUBLE_EQ(s[0].logprob, -1);
  EXPECT_EQ(s[2].units, 1u);
  // Bytes no token covers (here é) form a segment with no value.
  const DocumentTokens g = sample({{0, 5}, {7, 9}}, {-1, -3});
  s = report::heat_segments(g, 0, 9);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[1].units, 1u);
  EXPECT_TRUE(std::isnan(s[1].logprob));
  // Only the file's own tokens are looked at: token 1 (é) left out is a gap.
  s = report::heat_segments(d, 0, 9, 0, 1);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_DOUBLE_EQ(s[0].logprob, -1);
  EXPECT_TRUE(std::isnan(s[1].logprob));
  EXPECT_EQ(s[1].units, 3u);  // "é\nb"
  // No offsets stored: one segment without a value.
  DocumentTokens none;
  none.text = "xyz";
  s = report::heat_segments(none, 0, 3);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_TRUE(std::isnan(s[0].logprob));
}

TEST(ReportHeat, EncodingRoundsToHundredthsAndKeepsNoValue) {
  const std::vector<report::Segment> in = {{1, -0.123}, {300, -17.456}, {2, std::nan("")}, {70000, 0.0}, {5, -1e9}};
  const std::string b64 = report::encode_segments(in);
  EXPECT_EQ(b64.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="), std::string::npos);
  const auto out = report::decode_segments(b64);
  ASSERT_EQ(out.size(), in.size());
  EXPECT_EQ(out[1].units, 300u);
  EXPECT_EQ(out[3].units, 70000u);
  EXPECT_DOUBLE_EQ(out[0].logprob, -0.12);
  EXPECT_DOUBLE_EQ(out[1].logprob, -17.46);
  EXPECT_TRUE(std::isnan(out[2].logprob));
  EXPECT_DOUBLE_EQ(out[3].logprob, 0.0);
  EXPECT_DOUBLE_EQ(out[4].logprob, -1e9);
}

TEST(ReportEntries, FilesOfCodebasesAndDocumentsOfTheirOwn) {
  ResultTables t;
  for (const char* p : {"/r/code", "/r/notes.txt", "/r/bin.dat"}) t.documents.emplace_back().path = p;
  t.documents[0].status = t.documents[1].status = "ok";
  t.documents[1].truncated = true;
  t.documents[2].status = "skipped";
  t.documents[1].summary = "A summary.";
  FileRow a, b;
  a.path = "src/a.py", a.token_end = 6;
  b.path = "b.py", b.token_begin = 6, b.token_end = 10, b.status = "dropped";
  t.files = {a, b};
  const auto e = report::entries(t);
  ASSERT_EQ(e.size(), 4u);
  EXPECT_EQ(e[0].path, "/r/code/src/a.py");
  EXPECT_EQ(e[0].n_tokens, 6u);
  EXPECT_EQ(e[0].file, 0);
  EXPECT_EQ(e[1].status, "dropped");
  EXPECT_EQ(e[2].path, "/r/notes.txt");
  EXPECT_EQ(e[2].file, -1);
  EXPECT_EQ(e[2].status, "truncated");
  EXPECT_EQ(e[2].summary, "A summary.");
  EXPECT_EQ(e[3].status, "skipped");
  EXPECT_EQ(e[3].summary, "");
}

TEST(ReportEntries, DirectoryTreeBelowTheCommonFolder) {
  std::vector<report::Entry> e(3);
  e[0].path = "/r/a/x.py", e[0].n_tokens = 10, e[0].n_scored = 9, e[0].nll_sum = 9;
  e[1].path = "/r/a/b/y.py", e[1].n_tokens = 5, e[1].n_scored = 4, e[1].nll_sum = 8;
  e[2].path = "/r/z.py", e[2].n_tokens = 1;
  const auto t = report::directory_tree(e);
  EXPECT_EQ(t.root, "/r");
  ASSERT_EQ(t.directories.size(), 3u);
  EXPECT_EQ(t.directories[1].path, "a");
  EXPECT_EQ(t.directories[2].path, "a/b");
  EXPECT_EQ(t.directories[2].parent, 1);
  EXPECT_EQ(t.directories[0].n_tokens, 16u);
  EXPECT_EQ(t.directories[1].files, 2u);
  EXPECT_DOUBLE_EQ(t.directories[1].nll_sum, 17);
  EXPECT_EQ(t.entry_directory, (std::vector<int64_t>{1, 2, 0}));
  // Relative paths and a single file.
  std::vector<report::Entry> one(1);
  one[0].path = "x.py";
  EXPECT_EQ(report::directory_tree(one).root, "");
  EXPECT_EQ(report::directory_tree(one).directories.size(), 1u);
}

}  // namespace
}  // namespace ringscan::io
