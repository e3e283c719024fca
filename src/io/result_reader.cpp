#include "io/result_reader.h"

#include <filesystem>

#include "io/final_file.h"
#include "io/fs_util.h"
#include "io/hdf5_util.h"
#include "io/part_file.h"
#include "io/utf8_check.h"
#include "util/error.h"

namespace ringscan::io {

namespace {

// The element types of docs/hdf5-schema.md §1.
enum class Kind { String, U8, I32, U64, I64, F32, F64 };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::String: return "variable-length strings";
    case Kind::U8: return "uint8";
    case Kind::I32: return "int32";
    case Kind::U64: return "uint64";
    case Kind::I64: return "int64";
    case Kind::F32: return "float32";
    case Kind::F64: return "float64";
  }
  return "?";
}

bool has_kind(hid_t type, Kind k) {
  const H5T_class_t cls = H5Tget_class(type);
  const size_t size = H5Tget_size(type);
  switch (k) {
    case Kind::String: return cls == H5T_STRING && H5Tis_variable_str(type) > 0;
    case Kind::F32: return cls == H5T_FLOAT && size == 4;
    case Kind::F64: return cls == H5T_FLOAT && size == 8;
    case Kind::U8: return cls == H5T_INTEGER && size == 1 && H5Tget_sign(type) == H5T_SGN_NONE;
    case Kind::U64: return cls == H5T_INTEGER && size == 8 && H5Tget_sign(type) == H5T_SGN_NONE;
    case Kind::I32: return cls == H5T_INTEGER && size == 4 && H5Tget_sign(type) == H5T_SGN_2;
    case Kind::I64: return cls == H5T_INTEGER && size == 8 && H5Tget_sign(type) == H5T_SGN_2;
  }
  return false;
}

// A dataset of the schema, opened after checking its type and number of dimensions.
struct Column {
  std::string name;
  h5::Id ds;
  std::vector<hsize_t> dims;
  hsize_t rows() const { return dims.empty() ? 0 : dims[0]; }
};

bool link_exists(hid_t file, const std::string& name) {
  // H5Lexists fails (rather than answers no) when a parent group is missing: walk down.
  for (size_t slash = name.find('/', 1);; slash = name.find('/', slash + 1)) {
    const std::string prefix = name.substr(0, slash);
    if (H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) {
      h5::last_error();  // clear the stack
      return false;
    }
    if (slash == std::string::npos) return true;
  }
}

Column open_column(hid_t file, const std::string& name, Kind kind, int ndims, const std::string& path) {
  const std::string where = path + ": dataset " + name;
  if (!link_exists(file, name)) throw Error(path + " is not a complete ringscan result file: it has no dataset " + name);
  Column c{name, h5::Id(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose, where + " cannot be opened as a dataset"), {}};
  h5::Id type(H5Dget_type(c.ds), H5Tclose, where + ": cannot read its type");
  if (!has_kind(type, kind))
    throw Error(where + " does not hold " + kind_name(kind) + ", as docs/hdf5-schema.md specifies");
  h5::Id space(H5Dget_space(c.ds), H5Sclose, where + ": cannot read its shape");
  const int got = H5Sget_simple_extent_ndims(space);
  if (H5Sget_simple_extent_type(space) != H5S_SIMPLE || got != ndims)
    throw Error(where + " has " + std::to_string(got < 0 ? 0 : got) + " dimension(s); docs/hdf5-schema.md gives it " +
                std::to_string(ndims));
  c.dims.resize(ndims);
  h5::check(H5Sget_simple_extent_dims(space, c.dims.data(), nullptr), where + ": cannot read its shape");
  // A header may claim 2^40 rows in a file of a few KB; reading them would exhaust memory.
  // Every element takes at least one byte of storage, and storage lies within the file.
  hsize_t elements = 1;
  for (hsize_t d : c.dims)
    if (__builtin_mul_overflow(elements, d, &elements)) throw Error(where + " has an impossible shape");
  hsize_t file_bytes = 0;
  h5::check(H5Fget_filesize(file, &file_bytes), path + ": cannot read its size");
  const hsize_t stored = H5Dget_storage_size(c.ds);
  if (elements > stored || stored > file_bytes)
    throw Error(where + " claims " + std::to_string(elements) + " elements but the file stores " +
                std::to_string(std::min(stored, file_bytes)) + " bytes of it (damaged file?)");
  return c;
}

// Opens `names` of one group: 1-D, all with the same number of rows.
std::vector<Column> open_group(hid_t file, const std::string& group, const std::vector<std::pair<const char*, Kind>>& columns,
                               const std::string& path) {
  std::vector<Column> out;
  for (const auto& [name, kind] : columns) {
    out.push_back(open_column(file, group + "/" + name, kind, 1, path));
    if (out.back().rows() != out.front().rows())
      throw Error(path + ": dataset " + out.back().name + " has " + std::to_string(out.back().rows()) + " rows but " +
                  out.front().name + " has " + std::to_string(out.front().rows()) + "; every dataset of " + group +
                  " has one row per entry (docs/hdf5-schema.md)");
  }
  return out;
}

const Column& column(const std::vector<Column>& cs, const std::string& name) {
  for (const Column& c : cs)
    if (c.name == name) return c;
  throw Error("result reader: no column " + name);  // a bug here, never the file's
}

template <class T>
std::vector<T> read_numbers(const Column& c, hid_t mem_type, const std::string& path) {
  std::vector<T> v(c.rows());
  if (!v.empty()) h5::check(H5Dread(c.ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), path + ": reading " + c.name);
  return v;
}

std::vector<std::string> read_strings(const Column& c, const std::string& path) {
  const hsize_t n = c.rows();
  std::vector<char*> raw(n, nullptr);
  h5::Id type = h5::utf8_string_type();
  if (n) h5::check(H5Dread(c.ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()), path + ": reading " + c.name);
  std::vector<std::string> out(n);
  for (hsize_t i = 0; i < n; ++i) out[i] = raw[i] ? raw[i] : "";
  if (n) {
    h5::Id space(H5Dget_space(c.ds), H5Sclose, path + ": " + c.name);
    H5Dvlen_reclaim(type, space, H5P_DEFAULT, raw.data());
  }
  return out;
}

// The generated text of a summarize result ("" for other documents). extra is free-form
// JSON: what is not an object with a string "text" has no summary.
// A string member of extra's JSON text; "" when there is none.
std::string extra_string(const std::string& extra, const char* key) {
  const Json j = Json::parse(extra, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains(key) && j[key].is_string()) return j[key].get<std::string>();
  return "";
}

// Root attributes that are single values (strings and numbers); others are not ours: skipped.
herr_t collect_attribute(hid_t loc, const char* name, const H5A_info_t*, void* data) {
  auto* j = static_cast<Json*>(data);
  hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  if (a < 0) return 0;
  hid_t t = H5Aget_type(a), space = H5Aget_space(a);
  // H5Aread writes every element: only a scalar fits the one value read below.
  if (t >= 0 && space >= 0 && H5Sget_simple_extent_type(space) == H5S_SCALAR) {
    if (H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) > 0) {
      h5::Id st = h5::utf8_string_type();
      char* s = nullptr;
      if (H5Aread(a, st, &s) >= 0 && s) (*j)[name] = std::string(s), H5free_memory(s);
    } else if (H5Tget_class(t) == H5T_INTEGER) {
      long long v = 0;
      if (H5Aread(a, H5T_NATIVE_LLONG, &v) >= 0) (*j)[name] = v;
    } else if (H5Tget_class(t) == H5T_FLOAT) {
      double v = 0;
      if (H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0) (*j)[name] = v;
    }
  }
  if (space >= 0) H5Sclose(space);
  if (t >= 0) H5Tclose(t);
  H5Aclose(a);
  h5::last_error();  // a value we could not convert is skipped; clear its error
  return 0;
}

}  // namespace

ResultTables read_result_tables(const std::string& path) {
  h5::quiet();
  if (!std::filesystem::exists(path)) throw Error("result file " + path + " does not exist");
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    h5::last_error();  // clear the stack
    throw Error(path + " is not an HDF5 file");
  }
  h5::Id file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose, path + " is not an HDF5 file");
  ResultTables t;
  hsize_t idx = 0;
  H5Aiterate2(file, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_attribute, &t.attributes);
  h5::last_error();
  const Json& version = t.attributes.contains("format_version") ? t.attributes["format_version"] : Json();
  if (!version.is_number_integer())
    throw Error(path + " is not a ringscan result file (no integer format_version attribute)");
  if (version.get<int64_t>() != kFormatVersion)
    throw Error(path + " has format_version " + version.dump() + "; this ringscan reads version " +
                std::to_string(kFormatVersion));

  const auto docs = open_group(file, "/documents",
                               {{"path", Kind::String}, {"status", Kind::String}, {"error", Kind::String},
                                {"truncated", Kind::U8}, {"n_tokens", Kind::U64}, {"token_offset", Kind::U64},
                                {"n_scored", Kind::U64}, {"nll_sum", Kind::F64}, {"nll_mean", Kind::F64},
                                {"perplexity", Kind::F64}, {"extra", Kind::String}},
                               path);
  const hsize_t n = docs.front().rows();
  const Json& n_attr = t.attributes.contains("n_documents") ? t.attributes["n_documents"] : Json();
  if (!n_attr.is_number_integer() || n_attr.get<int64_t>() < 0 || uint64_t(n_attr.get<int64_t>()) != n)
    throw Error(path + ": attribute n_documents is " + n_attr.dump(-1, ' ', false, Json::error_handler_t::replace) +
                " but /documents has " + std::to_string(n) + " rows");  // replace: a string may be any bytes
  const auto tokens = open_group(file, "/tokens", {{"ids", Kind::I32}, {"logprob", Kind::F32}}, path);
  const auto files = open_group(file, "/files",
                                {{"document", Kind::U64}, {"path", Kind::String}, {"token_begin", Kind::U64},
                                 {"token_end", Kind::U64}, {"n_scored", Kind::U64}, {"nll_sum", Kind::F64},
                                 {"perplexity", Kind::F64}},
                                path);
  open_group(file, "/skipped",
             {{"document", Kind::I64}, {"path", Kind::String}, {"reason", Kind::String}, {"detail", Kind::String}},
             path);
  for (const char* name : {"/embeddings/mean", "/embeddings/last"}) {
    if (!link_exists(file, name)) continue;
    const Column e = open_column(file, name, Kind::F32, 2, path);
    if (e.rows() != n)
      throw Error(path + ": dataset " + std::string(name) + " has " + std::to_string(e.rows()) + " rows but /documents has " +
                  std::to_string(n));
  }

  // Issue 16's text and offsets: all of them or none (files written before they were stored).
  std::vector<Column> doc_text, file_text;
  hsize_t total_text = 0;
  t.has_text = link_exists(file, "/text/utf8");
  if (t.has_text) {
    total_text = open_column(file, "/text/utf8", Kind::U8, 1, path).rows();
    doc_text = open_group(file, "/documents", {{"path", Kind::String}, {"text_offset", Kind::U64},
                                               {"text_bytes", Kind::U64}}, path);
    open_group(file, "/tokens", {{"ids", Kind::I32}, {"text_begin", Kind::U64}, {"text_end", Kind::U64}}, path);
    file_text = open_group(file, "/files", {{"path", Kind::String}, {"status", Kind::String}, {"header", Kind::String},
                                            {"text_begin", Kind::U64}, {"text_end", Kind::U64}}, path);
  }

  auto paths = read_strings(column(docs, "/documents/path"), path);
  auto status = read_strings(column(docs, "/documents/status"), path);
  auto error = read_strings(column(docs, "/documents/error"), path);
  auto n_tokens = read_numbers<uint64_t>(column(docs, "/documents/n_tokens"), H5T_NATIVE_UINT64, path);
  auto offset = read_numbers<uint64_t>(column(docs, "/documents/token_offset"), H5T_NATIVE_UINT64, path);
  auto ppl = read_numbers<double>(column(docs, "/documents/perplexity"), H5T_NATIVE_DOUBLE, path);
  auto trunc = read_numbers<uint8_t>(column(docs, "/documents/truncated"), H5T_NATIVE_UINT8, path);
  auto scored = read_numbers<uint64_t>(column(docs, "/documents/n_scored"), H5T_NATIVE_UINT64, path);
  auto nll = read_numbers<double>(column(docs, "/documents/nll_sum"), H5T_NATIVE_DOUBLE, path);
  auto extra = read_strings(column(docs, "/documents/extra"), path);
  std::vector<uint64_t> text_offset(n), text_bytes(n);
  if (t.has_text) {
    text_offset = read_numbers<uint64_t>(column(doc_text, "/documents/text_offset"), H5T_NATIVE_UINT64, path);
    text_bytes = read_numbers<uint64_t>(column(doc_text, "/documents/text_bytes"), H5T_NATIVE_UINT64, path);
  }
  const hsize_t total_tokens = tokens.front().rows();
  for (size_t i = 0; i < n; ++i) {
    if (offset[i] > total_tokens || n_tokens[i] > total_tokens - offset[i])
      throw Error(path + ": document " + std::to_string(i) + " has tokens [" + std::to_string(offset[i]) + ", +" +
                  std::to_string(n_tokens[i]) + ") beyond the " + std::to_string(total_tokens) + " rows of /tokens");
    if (text_offset[i] > total_text || text_bytes[i] > total_text - text_offset[i])
      throw Error(path + ": document " + std::to_string(i) + " has text [" + std::to_string(text_offset[i]) + ", +" +
                  std::to_string(text_bytes[i]) + ") beyond the " + std::to_string(total_text) + " bytes of /text/utf8");
    t.documents.push_back({paths[i], status[i], error[i], n_tokens[i], ppl[i], trunc[i] != 0, offset[i], scored[i],
                           nll[i], extra[i], extra_string(extra[i], "text"),
                           extra_string(extra[i], "question"), text_offset[i], text_bytes[i]});
  }
  auto fdoc = read_numbers<uint64_t>(column(files, "/files/document"), H5T_NATIVE_UINT64, path);
  auto fpath = read_strings(column(files, "/files/path"), path);
  auto fb = read_numbers<uint64_t>(column(files, "/files/token_begin"), H5T_NATIVE_UINT64, path);
  auto fe = read_numbers<uint64_t>(column(files, "/files/token_end"), H5T_NATIVE_UINT64, path);
  auto fp = read_numbers<double>(column(files, "/files/perplexity"), H5T_NATIVE_DOUBLE, path);
  auto fscored = read_numbers<uint64_t>(column(files, "/files/n_scored"), H5T_NATIVE_UINT64, path);
  auto fnll = read_numbers<double>(column(files, "/files/nll_sum"), H5T_NATIVE_DOUBLE, path);
  std::vector<std::string> fstatus(fpath.size(), "ok"), fheader(fpath.size());
  std::vector<uint64_t> ftb(fpath.size()), fte(fpath.size());
  if (t.has_text) {
    fstatus = read_strings(column(file_text, "/files/status"), path);
    fheader = read_strings(column(file_text, "/files/header"), path);
    ftb = read_numbers<uint64_t>(column(file_text, "/files/text_begin"), H5T_NATIVE_UINT64, path);
    fte = read_numbers<uint64_t>(column(file_text, "/files/text_end"), H5T_NATIVE_UINT64, path);
  }
  for (size_t i = 0; i < fpath.size(); ++i) {
    if (fdoc[i] >= n || fb[i] > fe[i] || fe[i] > n_tokens[fdoc[i]])
      throw Error(path + ": /files row " + std::to_string(i) + " (document " + std::to_string(fdoc[i]) + ", tokens [" +
                  std::to_string(fb[i]) + ", " + std::to_string(fe[i]) + ")) lies outside its document");
    if (ftb[i] > fte[i] || fte[i] > text_bytes[fdoc[i]])
      throw Error(path + ": /files row " + std::to_string(i) + " (document " + std::to_string(fdoc[i]) + ", text [" +
                  std::to_string(ftb[i]) + ", " + std::to_string(fte[i]) + ")) lies outside its document's text (" +
                  std::to_string(text_bytes[fdoc[i]]) + " bytes)");
    t.files.push_back({fdoc[i], fpath[i], fb[i], fe[i], fp[i], fscored[i], fnll[i], fstatus[i], fheader[i], ftb[i], fte[i]});
  }
  return t;
}

ResultTables read_parts_tables(const std::string& dir) {
  const std::string run_path = dir + "/" + kRunFile;
  if (!path_exists(run_path))
    throw Error(dir + " holds no " + std::string(kRunFile) + "; expected the parts folder of a ringscan run");
  Json run;
  try {
    run = read_json_file(run_path);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + "; expected the " + kRunFile + " of a ringscan run");
  }
  if (!run.is_object() || run.value("format", "") != kRunFormat || !run.contains("n_documents") ||
      !run["n_documents"].is_number_unsigned())
    throw Error(run_path + " is not the run.json of a ringscan run (no \"format\": \"" + std::string(kRunFormat) +
                "\" with n_documents)");
  ResultTables t;
  t.in_progress = true;
  t.run_documents = run["n_documents"].get<uint64_t>();
  t.attributes["n_documents"] = t.run_documents;
  const Json identity = run.value("identity", Json::object()), about = run.value("about", Json::object());
  if (identity.is_object() && identity.contains("job") && identity["job"].is_string()) t.attributes["job"] = identity["job"];
  if (about.is_object())
    for (const auto& [k, v] : about.items())
      if (v.is_string() || v.is_number()) t.attributes[k] = v;
  const PartIndex idx = scan_parts(dir, t.run_documents, nullptr);
  t.part_files = idx.files.size();
  for (uint64_t i = 0; i < t.run_documents; ++i) {
    const auto& [file, entry] = idx.at[i];
    if (file == UINT32_MAX) continue;
    const DocumentResult r = read_part_record(dir + "/" + idx.files[file], entry);
    DocumentRow d;
    d.path = r.path, d.status = r.status, d.error = r.error, d.truncated = r.truncated;
    d.n_tokens = r.token_ids.size(), d.perplexity = r.perplexity, d.n_scored = r.n_scored, d.nll_sum = r.nll_sum;
    d.extra = r.extra.dump(-1, ' ', false, Json::error_handler_t::replace);
    d.summary = extra_string(d.extra, "text");
    d.question = extra_string(d.extra, "question");
    for (const FileResult& f : r.files) {
      FileRow row;
      row.document = t.documents.size(), row.path = f.path, row.token_begin = f.token_begin, row.token_end = f.token_end;
      row.perplexity = f.perplexity, row.n_scored = f.n_scored, row.nll_sum = f.nll_sum, row.status = f.status;
      t.files.push_back(row);
    }
    t.documents.push_back(std::move(d));
  }
  return t;
}

ResultTokenReader::ResultTokenReader(const std::string& path, const ResultTables& tables)
    : path_(path),
      tables_(tables),
      file_(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose, path + " is not an HDF5 file") {}

DocumentTokens ResultTokenReader::read(uint64_t document) const {
  const DocumentRow& d = tables_.documents.at(document);
  DocumentTokens out;
  out.logprob.resize(d.n_tokens);
  h5::read_rows(file_, "/tokens/logprob", H5T_NATIVE_FLOAT, d.token_offset, d.n_tokens, 1, out.logprob.data(), path_);
  if (!tables_.has_text) return out;
  out.text_begin.resize(d.n_tokens);
  out.text_end.resize(d.n_tokens);
  h5::read_rows(file_, "/tokens/text_begin", H5T_NATIVE_UINT64, d.token_offset, d.n_tokens, 1, out.text_begin.data(),
                path_);
  h5::read_rows(file_, "/tokens/text_end", H5T_NATIVE_UINT64, d.token_offset, d.n_tokens, 1, out.text_end.data(), path_);
  out.text.resize(d.text_bytes);
  h5::read_rows(file_, "/text/utf8", H5T_NATIVE_UINT8, d.text_offset, d.text_bytes, 1, out.text.data(), path_);
  const std::string doc = path_ + ": document " + std::to_string(document) + " (" + d.path + ")";
  if (const size_t bad = utf8_invalid_offset(out.text); bad != std::string::npos)
    throw Error(doc + ": its text in /text/utf8 is not valid UTF-8 at byte " + std::to_string(bad));
  for (uint64_t k = 0; k < d.n_tokens; ++k)
    if (out.text_begin[k] > out.text_end[k] || out.text_end[k] > d.text_bytes)
      throw Error(doc + ": token " + std::to_string(k) + " covers bytes [" + std::to_string(out.text_begin[k]) + ", " +
                  std::to_string(out.text_end[k]) + ") in /tokens/text_begin|text_end, outside its " +
                  std::to_string(d.text_bytes) + " bytes of text");
  return out;
}

}  // namespace ringscan::io
