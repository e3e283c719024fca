// Content checks of read_text, the codebase header, and loading codebase documents.
#include <gtest/gtest.h>

#include "io/text_reader.h"
#include "io/utf8_check.h"
#include "io_test_util.h"

namespace ringscan::io {
namespace {

using test::TempDir;

ReadResult read_bytes(const TempDir& t, const std::string& name, const std::string& bytes) {
  test::write_file(t / name, bytes);
  return read_text(SourceFile{name, t / name, bytes.size()});
}

TEST(ReadText, PlainTextWithTabsEscapesAndBom) {
  TempDir t;
  const std::string text = "\xEF\xBB\xBF# title\n\tindent\r\n\x1B[1mbold\x1B[0m\f\n\xF0\x9F\x98\x80 \xE6\x96\x87\n";
  ReadResult r = read_bytes(t, "a.txt", text);
  ASSERT_TRUE(r.ok) << r.reason << " " << r.detail;
  EXPECT_EQ(r.text, text);
}

TEST(ReadText, EmptyAndBinary) {
  TempDir t;
  ReadResult e = read_bytes(t, "e", "");
  EXPECT_FALSE(e.ok);
  EXPECT_EQ(e.reason, skip_reason::kEmpty);

  ReadResult nul = read_bytes(t, "n", std::string("abc\0def", 7));
  EXPECT_FALSE(nul.ok);
  EXPECT_EQ(nul.reason, skip_reason::kBinary);
  EXPECT_EQ(nul.detail, "NUL byte at offset 3");

  // Control bytes without NUL: more than 10% of the sample is binary.
  std::string ctl;
  for (int i = 0; i < 100; ++i) ctl += (i % 5 == 0) ? '\x01' : 'a';  // 20%
  ReadResult c = read_bytes(t, "c", ctl);
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.reason, skip_reason::kBinary);
  EXPECT_EQ(c.detail, "20 of the first 100 bytes are control characters");
  std::string few;
  for (int i = 0; i < 100; ++i) few += (i % 20 == 0) ? '\x02' : 'a';  // 5%: text
  EXPECT_TRUE(read_bytes(t, "f", few).ok);

  // NUL bytes are only looked for in the first 8 KiB (the documented sniff window), and
  // NUL is valid UTF-8: such a file reads as text.
  std::string late(9000, 'a');
  late[8500] = '\0';
  EXPECT_TRUE(read_bytes(t, "late", late).ok);
}

TEST(ReadText, InvalidUtf8AnywhereWithItsOffset) {
  TempDir t;
  std::string s(10000, 'x');
  s += "\xC3\xA9";        // valid
  s += "\xC3";            // truncated sequence
  s += "y";
  ReadResult r = read_bytes(t, "u", s);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.reason, skip_reason::kNonUtf8);
  EXPECT_EQ(r.detail, "invalid UTF-8 at byte offset 10002");
  EXPECT_EQ(read_bytes(t, "latin1", "caf\xE9\n").reason, skip_reason::kNonUtf8);
}

TEST(Utf8, StrictRules) {
  EXPECT_TRUE(is_valid_utf8("plain"));
  EXPECT_TRUE(is_valid_utf8("\xF4\x8F\xBF\xBF"));         // U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));        // above U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));                // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xE0\x80\xAF"));            // overlong
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));            // surrogate
  EXPECT_TRUE(is_valid_utf8("\xED\x9F\xBF"));             // U+D7FF
  EXPECT_FALSE(is_valid_utf8("\x80"));                    // lone continuation
  EXPECT_FALSE(is_valid_utf8("\xF0\x9F\x98"));            // truncated at the end
  EXPECT_EQ(utf8_invalid_offset("abcdefghij\xFF"), 10u);  // found after the 8-byte ASCII skip
  EXPECT_EQ(utf8_sanitize("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
}

TEST(CodebaseHeader, OneLineWhateverTheName) {
  EXPECT_EQ(codebase_header("src/main.py"), "### FILE: src/main.py\n");
  EXPECT_EQ(codebase_header("we\nird\\na\rme"), "### FILE: we\\nird\\\\na\\rme\n");
}

TEST(LoadDocument, CodebaseKeepsReadableFilesAndReportsTheOthers) {
  TempDir t;
  const std::string root = t / "cb";
  test::write_file(root + "/a.txt", "a\n");
  test::write_file(root + "/b.bin", std::string("\0\1\2", 3));
  test::write_file(root + "/c.txt", "c");
  Document doc{root, true, {{"a.txt", root + "/a.txt", 2}, {"b.bin", root + "/b.bin", 3}, {"c.txt", root + "/c.txt", 1}}};
  LoadedDocument d = load_document(doc);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d.text(), "### FILE: a.txt\na\n### FILE: c.txt\nc\n");
  ASSERT_EQ(d.skipped.size(), 1u);
  EXPECT_EQ(d.skipped[0].path, root + "/b.bin");
  EXPECT_EQ(d.skipped[0].reason, skip_reason::kBinary);

  Document only_binary{root, true, {{"b.bin", root + "/b.bin", 3}}};
  LoadedDocument none = load_document(only_binary);
  EXPECT_FALSE(none.ok());
  EXPECT_EQ(none.skip_reason, skip_reason::kNoReadableFiles);

  Document single{root + "/b.bin", false, {{root + "/b.bin", root + "/b.bin", 3}}};
  LoadedDocument s = load_document(single);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.skip_reason, skip_reason::kBinary);
  EXPECT_EQ(s.skip_detail, "NUL byte at offset 0");
}

}  // namespace
}  // namespace ringscan::io
