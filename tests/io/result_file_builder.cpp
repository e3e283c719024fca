#include "result_file_builder.h"

#include <algorithm>
#include <cmath>

#include "io/hdf5_util.h"
#include "util/error.h"

namespace ringscan::io::test {

namespace {

hid_t file_type(ColumnType t) {
  switch (t) {
    case ColumnType::U8: return H5T_STD_U8LE;
    case ColumnType::I32: return H5T_STD_I32LE;
    case ColumnType::U64: return H5T_STD_U64LE;
    case ColumnType::I64: return H5T_STD_I64LE;
    case ColumnType::F32: return H5T_IEEE_F32LE;
    case ColumnType::F64: return H5T_IEEE_F64LE;
    case ColumnType::String: break;
  }
  return -1;
}

ColumnSpec numbers(const std::string& name, ColumnType type, std::vector<double> values) {
  return ColumnSpec{name, type, {values.size()}, std::move(values), {}, true};
}

ColumnSpec strings(const std::string& name, std::vector<std::string> values) {
  return ColumnSpec{name, ColumnType::String, {values.size()}, {}, std::move(values), true};
}

void write_column(hid_t file, const ColumnSpec& c) {
  h5::Id lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose, "link properties");
  h5::check(H5Pset_create_intermediate_group(lcpl, 1), "intermediate groups");
  h5::Id space(c.dims.empty() ? H5Screate(H5S_SCALAR)
                              : H5Screate_simple(int(c.dims.size()), c.dims.data(), nullptr),
               H5Sclose, "dataspace of " + c.name);
  h5::Id str = h5::utf8_string_type();
  const hid_t ftype = c.type == ColumnType::String ? hid_t(str) : file_type(c.type);
  h5::Id ds(H5Dcreate2(file, c.name.c_str(), ftype, space, lcpl, H5P_DEFAULT, H5P_DEFAULT), H5Dclose,
            "cannot create " + c.name);
  if (!c.write_data) return;
  hsize_t n = 1;
  for (hsize_t d : c.dims) n *= d;
  if (n == 0) return;
  if (c.type == ColumnType::String) {
    std::vector<const char*> ptrs(n, "");
    for (size_t i = 0; i < std::min<size_t>(n, c.strings.size()); ++i) ptrs[i] = c.strings[i].c_str();
    h5::check(H5Dwrite(ds, str, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), "cannot write " + c.name);
  } else {
    std::vector<double> v(n, 0.0);
    std::copy_n(c.numbers.begin(), std::min<size_t>(n, c.numbers.size()), v.begin());
    h5::check(H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), "cannot write " + c.name);
  }
}

void write_attribute(hid_t file, const std::string& name, const Json& v) {
  if (v.is_array()) {
    std::vector<long long> values;
    for (const Json& x : v) values.push_back(x.is_number() ? x.get<long long>() : 0);
    hsize_t n = values.size();
    h5::Id space(H5Screate_simple(1, &n, nullptr), H5Sclose, "attribute space");
    h5::Id a(H5Acreate2(file, name.c_str(), H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose, name);
    if (n) h5::check(H5Awrite(a, H5T_NATIVE_LLONG, values.data()), name);
    return;
  }
  h5::Id space(H5Screate(H5S_SCALAR), H5Sclose, "attribute space");
  if (v.is_string()) {
    h5::Id type = h5::utf8_string_type();
    h5::Id a(H5Acreate2(file, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose, name);
    const std::string& s = v.get_ref<const std::string&>();
    const char* p = s.c_str();
    h5::check(H5Awrite(a, type, &p), name);
  } else if (v.is_number_integer()) {
    const long long x = v.get<long long>();
    h5::Id a(H5Acreate2(file, name.c_str(), H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose, name);
    h5::check(H5Awrite(a, H5T_NATIVE_LLONG, &x), name);
  } else if (v.is_number()) {
    const double x = v.get<double>();
    h5::Id a(H5Acreate2(file, name.c_str(), H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose, name);
    h5::check(H5Awrite(a, H5T_NATIVE_DOUBLE, &x), name);
  }
}

}  // namespace

ResultFileSpec ResultFileSpec::valid(size_t n) {
  ResultFileSpec s;
  std::vector<std::string> path, status(n, "ok"), error(n, ""), extra(n, "{}");
  std::vector<double> n_tokens(n, 3), offset, n_scored(n, 2), nll(n, 1.5), mean(n, 0.75), ppl(n, std::exp(0.75)),
      truncated(n, 0);
  for (size_t i = 0; i < n; ++i) path.push_back("doc" + std::to_string(i) + ".txt"), offset.push_back(3.0 * i);
  s.columns = {strings("/documents/path", path), strings("/documents/status", status),
               strings("/documents/error", error), numbers("/documents/truncated", ColumnType::U8, truncated),
               numbers("/documents/n_tokens", ColumnType::U64, n_tokens),
               numbers("/documents/token_offset", ColumnType::U64, offset),
               numbers("/documents/n_scored", ColumnType::U64, n_scored),
               numbers("/documents/nll_sum", ColumnType::F64, nll), numbers("/documents/nll_mean", ColumnType::F64, mean),
               numbers("/documents/perplexity", ColumnType::F64, ppl), strings("/documents/extra", extra),
               numbers("/tokens/ids", ColumnType::I32, std::vector<double>(3 * n, 7)),
               numbers("/tokens/logprob", ColumnType::F32, std::vector<double>(3 * n, -0.5))};
  const size_t f = n > 0 ? 1 : 0;
  s.columns.push_back(numbers("/files/document", ColumnType::U64, std::vector<double>(f, 0)));
  s.columns.push_back(strings("/files/path", std::vector<std::string>(f, "a.py")));
  s.columns.push_back(numbers("/files/token_begin", ColumnType::U64, std::vector<double>(f, 0)));
  s.columns.push_back(numbers("/files/token_end", ColumnType::U64, std::vector<double>(f, 3)));
  s.columns.push_back(numbers("/files/n_scored", ColumnType::U64, std::vector<double>(f, 2)));
  s.columns.push_back(numbers("/files/nll_sum", ColumnType::F64, std::vector<double>(f, 1.5)));
  s.columns.push_back(numbers("/files/perplexity", ColumnType::F64, std::vector<double>(f, std::exp(0.75))));
  s.columns.push_back(numbers("/skipped/document", ColumnType::I64, {}));
  s.columns.push_back(strings("/skipped/path", {}));
  s.columns.push_back(strings("/skipped/reason", {}));
  s.columns.push_back(strings("/skipped/detail", {}));
  s.attributes = {{"format_version", 1}, {"n_documents", int64_t(n)}, {"job", "score"}, {"model_dir", "demo"}};
  return s;
}

ResultFileSpec ResultFileSpec::valid_with_text(size_t n) {
  ResultFileSpec s = valid(n);
  std::vector<double> text, offset, begin, end;
  for (size_t i = 0; i < n; ++i) {
    for (double c : {'a', 'b', 'c'}) text.push_back(c);
    offset.push_back(3.0 * i);
    for (double t : {0, 1, 2}) begin.push_back(t), end.push_back(t + 1);
  }
  const size_t f = n > 0 ? 1 : 0;
  s.columns.push_back(numbers("/text/utf8", ColumnType::U8, text));
  s.columns.push_back(numbers("/documents/text_offset", ColumnType::U64, offset));
  s.columns.push_back(numbers("/documents/text_bytes", ColumnType::U64, std::vector<double>(n, 3)));
  s.columns.push_back(numbers("/tokens/text_begin", ColumnType::U64, begin));
  s.columns.push_back(numbers("/tokens/text_end", ColumnType::U64, end));
  s.columns.push_back(strings("/files/status", std::vector<std::string>(f, "ok")));
  s.columns.push_back(strings("/files/header", std::vector<std::string>(f, "### FILE: a.py\n")));
  s.columns.push_back(numbers("/files/text_begin", ColumnType::U64, std::vector<double>(f, 0)));
  s.columns.push_back(numbers("/files/text_end", ColumnType::U64, std::vector<double>(f, 3)));
  return s;
}

ColumnSpec& ResultFileSpec::column(const std::string& name) {
  for (ColumnSpec& c : columns)
    if (c.name == name) return c;
  throw Error("no column " + name + " in the spec");
}

void ResultFileSpec::remove(const std::string& name) {
  columns.erase(std::remove_if(columns.begin(), columns.end(), [&](const ColumnSpec& c) { return c.name == name; }),
                columns.end());
}

void ResultFileSpec::write(const std::string& path) const {
  h5::quiet();
  h5::Id file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose, "cannot create " + path);
  for (const ColumnSpec& c : columns) write_column(file, c);
  for (const auto& [name, v] : attributes.items()) write_attribute(file, name, v);
  file.close("cannot finish " + path);
}

}  // namespace ringscan::io::test
