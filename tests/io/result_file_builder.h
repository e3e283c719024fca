// Result files written dataset by dataset, so that tests and the fuzzer (tools/fuzz)
// can make every kind of damage read_result_tables must refuse: a dataset missing,
// of another type or shape, rows that disagree, values out of range, odd attributes.
// ResultFileSpec::valid(n) is a well-formed file per docs/hdf5-schema.md.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "util/json_util.h"

namespace ringscan::io::test {

enum class ColumnType { String, U8, I32, U64, I64, F32, F64 };

struct ColumnSpec {
  std::string name;  // full path, e.g. "/documents/path"
  ColumnType type = ColumnType::U64;
  std::vector<hsize_t> dims;     // empty: a scalar
  std::vector<double> numbers;   // row-major values (missing ones are 0)
  std::vector<std::string> strings;
  bool write_data = true;  // false: create the dataset, never write it (no storage)
};

struct ResultFileSpec {
  std::vector<ColumnSpec> columns;
  // Root attributes: integers become int64, other numbers float64, strings
  // variable-length strings, arrays of numbers 1-D int64 attributes.
  Json attributes = Json::object();

  // A complete file: n documents of 3 tokens each; document 0 has one /files row.
  static ResultFileSpec valid(size_t documents);
  // valid(documents) with the text datasets: each document's text is "abc", its 3
  // tokens one byte each; the /files row is that whole text, status ok.
  static ResultFileSpec valid_with_text(size_t documents);
  ColumnSpec& column(const std::string& name);  // throws when absent
  void remove(const std::string& name);
  // Writes with serial HDF5; throws ringscan::Error when HDF5 refuses (e.g. a
  // shape too large for any file).
  void write(const std::string& path) const;
};

}  // namespace ringscan::io::test
