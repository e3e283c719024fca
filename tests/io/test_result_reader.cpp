// read_result_tables (ringscan inspect) on damaged and hostile result files: every
// dataset's type and shape is checked against docs/hdf5-schema.md before a row is read.
// It once read out of bounds when /documents datasets differed in length.
#include <gtest/gtest.h>

#include "io/result_reader.h"
#include "io_test_util.h"
#include "result_file_builder.h"
#include "util/error.h"

namespace ringscan::io {
namespace {

using test::ColumnSpec;
using test::ColumnType;
using test::ResultFileSpec;

// The error reading `spec` back gives ("(no error)" when it reads).
std::string read_error(const ResultFileSpec& spec) {
  test::TempDir t;
  const std::string path = t / "r.h5";
  spec.write(path);
  try {
    read_result_tables(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

#define EXPECT_CONTAINS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

TEST(ResultReader, AValidFileReadsBack) {
  test::TempDir t;
  ResultFileSpec::valid(4).write(t / "r.h5");
  const ResultTables r = read_result_tables(t / "r.h5");
  ASSERT_EQ(r.documents.size(), 4u);
  EXPECT_EQ(r.documents[2].path, "doc2.txt");
  EXPECT_EQ(r.documents[2].n_tokens, 3u);
  ASSERT_EQ(r.files.size(), 1u);
  EXPECT_EQ(r.files[0].token_end, 3u);
  EXPECT_EQ(r.attributes["job"], "score");
  EXPECT_EQ(read_error(ResultFileSpec::valid(0)), "(no error)");
}

TEST(ResultReader, TextDatasetsAreReadAndCheckedWhenPresent) {
  test::TempDir t;
  ResultFileSpec::valid_with_text(4).write(t / "r.h5");
  const ResultTables r = read_result_tables(t / "r.h5");
  EXPECT_TRUE(r.has_text);
  EXPECT_EQ(r.documents[3].text_bytes, 3u);
  ASSERT_EQ(r.files.size(), 1u);
  EXPECT_EQ(r.files[0].status, "ok");
  EXPECT_FALSE(read_result_tables((ResultFileSpec::valid(2).write(t / "old.h5"), t / "old.h5")).has_text);

  ResultFileSpec s = ResultFileSpec::valid_with_text(3);
  s.remove("/files/header");
  EXPECT_CONTAINS(read_error(s), "it has no dataset /files/header");
  s = ResultFileSpec::valid_with_text(3);
  s.column("/tokens/text_end").dims = {8};
  EXPECT_CONTAINS(read_error(s), "dataset /tokens/text_end has 8 rows but /tokens/ids has 9");
  s = ResultFileSpec::valid_with_text(3);
  s.column("/text/utf8").type = ColumnType::I32;
  EXPECT_CONTAINS(read_error(s), "dataset /text/utf8 does not hold uint8");
  s = ResultFileSpec::valid_with_text(3);
  s.column("/documents/text_bytes").numbers = {3, 3, 4};
  EXPECT_CONTAINS(read_error(s), "document 2 has text [6, +4) beyond the 9 bytes of /text/utf8");
  s = ResultFileSpec::valid_with_text(3);
  s.column("/files/text_end").numbers = {4};
  EXPECT_CONTAINS(read_error(s), "/files row 0 (document 0, text [0, 4)) lies outside its document's text");
}

TEST(ResultReader, DatasetsOfOneGroupMustAgreeInLength) {
  ResultFileSpec s = ResultFileSpec::valid(300);
  s.column("/documents/n_tokens").dims = {1};
  s.column("/documents/n_tokens").numbers = {3};
  const std::string e = read_error(s);
  EXPECT_CONTAINS(e, "dataset /documents/n_tokens has 1 rows but /documents/path has 300");
  s = ResultFileSpec::valid(3);
  s.column("/files/token_end").dims = {0};
  EXPECT_CONTAINS(read_error(s), "dataset /files/token_end has 0 rows but /files/document has 1");
  s = ResultFileSpec::valid(3);
  s.column("/tokens/logprob").dims = {2};
  EXPECT_CONTAINS(read_error(s), "/tokens/logprob has 2 rows");
  s = ResultFileSpec::valid(3);
  s.attributes["n_documents"] = 4;
  EXPECT_CONTAINS(read_error(s), "attribute n_documents is 4 but /documents has 3 rows");
}

TEST(ResultReader, TypesAndShapesFollowTheSchema) {
  ResultFileSpec s = ResultFileSpec::valid(3);
  s.column("/documents/n_tokens").type = ColumnType::F64;
  EXPECT_CONTAINS(read_error(s), "dataset /documents/n_tokens does not hold uint64");
  s = ResultFileSpec::valid(3);
  s.column("/documents/path").type = ColumnType::I32;
  EXPECT_CONTAINS(read_error(s), "dataset /documents/path does not hold variable-length strings");
  s = ResultFileSpec::valid(3);
  s.column("/documents/perplexity").dims = {3, 2};
  EXPECT_CONTAINS(read_error(s), "dataset /documents/perplexity has 2 dimension(s); docs/hdf5-schema.md gives it 1");
  s = ResultFileSpec::valid(3);
  s.column("/documents/status").dims = {};
  EXPECT_CONTAINS(read_error(s), "dataset /documents/status has 0 dimension(s)");
  s = ResultFileSpec::valid(3);
  s.remove("/skipped/reason");
  EXPECT_CONTAINS(read_error(s), "is not a complete ringscan result file: it has no dataset /skipped/reason");
  s = ResultFileSpec::valid(3);
  for (const char* c : {"/files/document", "/files/path", "/files/token_begin", "/files/token_end", "/files/n_scored",
                        "/files/nll_sum", "/files/perplexity"})
    s.remove(c);
  EXPECT_CONTAINS(read_error(s), "it has no dataset /files/document");
  s = ResultFileSpec::valid(3);
  s.columns.push_back({"/embeddings/mean", ColumnType::F32, {2, 8}, {}, {}, true});
  EXPECT_CONTAINS(read_error(s), "/embeddings/mean has 2 rows but /documents has 3");
}

TEST(ResultReader, RowsPointInsideTheirTables) {
  ResultFileSpec s = ResultFileSpec::valid(3);
  s.column("/documents/token_offset").numbers = {0, 3, 18446744073709549568.0};  // near 2^64: must not wrap
  EXPECT_CONTAINS(read_error(s), "document 2 has tokens");
  s = ResultFileSpec::valid(3);
  s.column("/documents/n_tokens").numbers = {3, 3, 4};
  EXPECT_CONTAINS(read_error(s), "beyond the 9 rows of /tokens");
  s = ResultFileSpec::valid(3);
  s.column("/files/document").numbers = {3};
  EXPECT_CONTAINS(read_error(s), "/files row 0 (document 3, tokens [0, 3)) lies outside its document");
  s = ResultFileSpec::valid(3);
  s.column("/files/token_begin").numbers = {2};
  s.column("/files/token_end").numbers = {1};
  EXPECT_CONTAINS(read_error(s), "lies outside its document");
}

TEST(ResultReader, ClaimsLargerThanTheFileAreRefused) {
  // 2^37 rows declared in a file of a few KB: reading them would allocate a terabyte.
  ResultFileSpec s = ResultFileSpec::valid(3);
  for (ColumnSpec* c : {&s.column("/tokens/ids"), &s.column("/tokens/logprob")}) {
    c->dims = {hsize_t(1) << 37};
    c->write_data = false;
  }
  EXPECT_CONTAINS(read_error(s), "dataset /tokens/ids claims 137438953472 elements but the file stores 0 bytes");
}

TEST(ResultReader, AttributesThatAreNotSingleValuesAreIgnored) {
  // H5Aread writes every element: a 1000-element format_version once overflowed a long long.
  ResultFileSpec s = ResultFileSpec::valid(2);
  s.attributes["format_version"] = Json(std::vector<int>(1000, 1));
  EXPECT_CONTAINS(read_error(s), "is not a ringscan result file (no integer format_version attribute)");
  s = ResultFileSpec::valid(2);
  s.attributes["format_version"] = 2;
  EXPECT_CONTAINS(read_error(s), "has format_version 2; this ringscan reads version 1");
  s = ResultFileSpec::valid(2);
  s.attributes["job"] = Json(std::vector<int>(1000, 1));
  EXPECT_EQ(read_error(s), "(no error)");
  // Found by tools/fuzz: a string attribute is any bytes; quoting it in a message must not throw.
  s = ResultFileSpec::valid(2);
  s.attributes["n_documents"] = "\xF6\x01";
  EXPECT_CONTAINS(read_error(s), "attribute n_documents is \"\xEF\xBF\xBD\\u0001\" but /documents has 2 rows");
}

}  // namespace
}  // namespace ringscan::io
