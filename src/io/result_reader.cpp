#include "io/result_reader.h"

#include <filesystem>

#include "io/hdf5_util.h"
#include "util/error.h"

namespace ringscan::io {

namespace {

hsize_t length(hid_t file, const std::string& name, const std::string& where) {
  h5::Id ds(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose, where + ": no dataset " + name);
  h5::Id space(H5Dget_space(ds), H5Sclose, where + ": " + name);
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space, &n, nullptr);
  return n;
}

template <class T>
std::vector<T> read_numbers(hid_t file, const std::string& name, hid_t mem_type, const std::string& where) {
  std::vector<T> v(length(file, name, where));
  h5::Id ds(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose, where + ": no dataset " + name);
  if (!v.empty()) h5::check(H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), where + ": reading " + name);
  return v;
}

std::vector<std::string> read_strings(hid_t file, const std::string& name, const std::string& where) {
  const hsize_t n = length(file, name, where);
  std::vector<char*> raw(n, nullptr);
  h5::Id ds(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose, where + ": no dataset " + name);
  h5::Id type = h5::utf8_string_type();
  if (n) h5::check(H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()), where + ": reading " + name);
  std::vector<std::string> out(n);
  for (hsize_t i = 0; i < n; ++i) out[i] = raw[i] ? raw[i] : "";
  if (n) {
    h5::Id space(H5Dget_space(ds), H5Sclose, where + ": " + name);
    H5Dvlen_reclaim(type, space, H5P_DEFAULT, raw.data());
  }
  return out;
}

herr_t collect_attribute(hid_t loc, const char* name, const H5A_info_t*, void* data) {
  auto* j = static_cast<Json*>(data);
  hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  if (a < 0) return 0;
  hid_t t = H5Aget_type(a);
  if (H5Tget_class(t) == H5T_STRING) {
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, H5T_VARIABLE);
    H5Tset_cset(st, H5T_CSET_UTF8);
    char* s = nullptr;
    if (H5Aread(a, st, &s) >= 0 && s) (*j)[name] = std::string(s), H5free_memory(s);
    H5Tclose(st);
  } else if (H5Tget_class(t) == H5T_INTEGER) {
    long long v = 0;
    if (H5Aread(a, H5T_NATIVE_LLONG, &v) >= 0) (*j)[name] = v;
  } else if (H5Tget_class(t) == H5T_FLOAT) {
    double v = 0;
    if (H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0) (*j)[name] = v;
  }
  H5Tclose(t);
  H5Aclose(a);
  return 0;
}

}  // namespace

ResultTables read_result_tables(const std::string& path) {
  h5::quiet();
  if (!std::filesystem::exists(path)) throw Error("result file " + path + " does not exist");
  h5::Id file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose, path + " is not an HDF5 file");
  ResultTables t;
  hsize_t idx = 0;
  H5Aiterate2(file, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_attribute, &t.attributes);
  if (!t.attributes.contains("format_version"))
    throw Error(path + " is not a ringscan result file (no format_version attribute)");
  auto paths = read_strings(file, "/documents/path", path);
  auto status = read_strings(file, "/documents/status", path);
  auto error = read_strings(file, "/documents/error", path);
  auto n_tokens = read_numbers<uint64_t>(file, "/documents/n_tokens", H5T_NATIVE_UINT64, path);
  auto ppl = read_numbers<double>(file, "/documents/perplexity", H5T_NATIVE_DOUBLE, path);
  auto trunc = read_numbers<uint8_t>(file, "/documents/truncated", H5T_NATIVE_UINT8, path);
  for (size_t i = 0; i < paths.size(); ++i)
    t.documents.push_back({paths[i], status[i], error[i], n_tokens[i], ppl[i], trunc[i] != 0});
  auto fdoc = read_numbers<uint64_t>(file, "/files/document", H5T_NATIVE_UINT64, path);
  auto fpath = read_strings(file, "/files/path", path);
  auto fb = read_numbers<uint64_t>(file, "/files/token_begin", H5T_NATIVE_UINT64, path);
  auto fe = read_numbers<uint64_t>(file, "/files/token_end", H5T_NATIVE_UINT64, path);
  auto fp = read_numbers<double>(file, "/files/perplexity", H5T_NATIVE_DOUBLE, path);
  for (size_t i = 0; i < fpath.size(); ++i) t.files.push_back({fdoc[i], fpath[i], fb[i], fe[i], fp[i]});
  return t;
}

}  // namespace ringscan::io
