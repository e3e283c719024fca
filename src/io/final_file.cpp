#include "io/final_file.h"

#include <hdf5.h>  // declares the MPI-IO driver when built parallel

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>

#include "io/fs_util.h"
#include "io/hdf5_util.h"
#include "io/mpi_agree.h"
#include "util/error.h"

namespace ringscan::io {

namespace {

using h5::Id;

// Creation properties without modification times, so that the same results give the
// same bytes (a resumed run's file equals an uninterrupted run's).
Id untimed(hid_t cls, const std::string& what) {
  Id p(H5Pcreate(cls), H5Pclose, "cannot create HDF5 " + what + " properties");
  h5::check(H5Pset_obj_track_times(p, false), "cannot turn off HDF5 time tracking");
  return p;
}

Id make_group(hid_t file, const char* name, const std::string& path) {
  Id gcpl = untimed(H5P_GROUP_CREATE, "group");
  return Id(H5Gcreate2(file, name, H5P_DEFAULT, gcpl, H5P_DEFAULT), H5Gclose,
            std::string("cannot create group ") + name + " in " + path);
}

// A numeric dataset of the image: no storage until parallel HDF5 opens it for writing
// (then every row is written, so no fill value is either).
Id late_storage_properties(const std::string& what) {
  Id dcpl = untimed(H5P_DATASET_CREATE, "dataset");
  h5::check(H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_LATE), "cannot set the allocation time of " + what);
  h5::check(H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER), "cannot set the fill time of " + what);
  return dcpl;
}

Id make_dataset(hid_t loc, const std::string& name, hid_t file_type, const std::vector<hsize_t>& dims,
                const std::string& path, bool no_storage_yet = false) {
  Id space(H5Screate_simple(int(dims.size()), dims.data(), nullptr), H5Sclose, "cannot create an HDF5 dataspace");
  Id dcpl = no_storage_yet ? late_storage_properties(name + " of " + path) : untimed(H5P_DATASET_CREATE, "dataset");
  return Id(H5Dcreate2(loc, name.c_str(), file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT), H5Dclose,
            "cannot create dataset " + name + " in " + path);
}

// Collective write of rows [first, first + rows) of a 1-D or 2-D (rows x width) dataset.
void write_rows(hid_t ds, hid_t mem_type, uint64_t first, uint64_t rows, uint64_t width, const void* data,
                hid_t dxpl, const std::string& what) {
  Id fspace(H5Dget_space(ds), H5Sclose, "cannot get the dataspace of " + what);
  const int rank = H5Sget_simple_extent_ndims(fspace);
  static const char dummy[16] = {};
  if (rows == 0 || width == 0) {
    // A rank with nothing to write still takes part in the collective call.
    h5::check(H5Sselect_none(fspace), "cannot select rows of " + what);
    hsize_t one = 1;
    Id mspace(H5Screate_simple(1, &one, nullptr), H5Sclose, "cannot create an HDF5 dataspace");
    h5::check(H5Sselect_none(mspace), "cannot select rows of " + what);
    h5::check(H5Dwrite(ds, mem_type, mspace, fspace, dxpl, dummy), "cannot write " + what);
    return;
  }
  hsize_t start[2] = {first, 0}, count[2] = {rows, width};
  h5::check(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, nullptr, count, nullptr),
            "cannot select rows of " + what);
  Id mspace(H5Screate_simple(rank, count, nullptr), H5Sclose, "cannot create an HDF5 dataspace");
  h5::check(H5Dwrite(ds, mem_type, mspace, fspace, dxpl, data), "cannot write " + what);
}

Id string_column(hid_t loc, const std::string& name, const std::vector<std::string>& values, const std::string& path) {
  Id type = h5::utf8_string_type();
  Id ds = make_dataset(loc, name, type, {values.size()}, path);
  std::vector<const char*> ptrs(values.size());
  for (size_t i = 0; i < values.size(); ++i) ptrs[i] = values[i].c_str();
  if (!values.empty())
    h5::check(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), "cannot write " + name + " of " + path);
  return ds;
}

void string_attribute(hid_t loc, const std::string& name, const std::string& value, const std::string& path) {
  Id type = h5::utf8_string_type();
  Id space(H5Screate(H5S_SCALAR), H5Sclose, "cannot create an HDF5 dataspace");
  Id a(H5Acreate2(loc, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
       "cannot create attribute " + name + " in " + path);
  const char* p = value.c_str();
  h5::check(H5Awrite(a, type, &p), "cannot write attribute " + name + " in " + path);
}

template <class T>
void number_attribute(hid_t loc, const std::string& name, hid_t file_type, hid_t mem_type, T value,
                      const std::string& path) {
  Id space(H5Screate(H5S_SCALAR), H5Sclose, "cannot create an HDF5 dataspace");
  Id a(H5Acreate2(loc, name.c_str(), file_type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
       "cannot create attribute " + name + " in " + path);
  h5::check(H5Awrite(a, mem_type, &value), "cannot write attribute " + name + " in " + path);
}

std::string read_string_attribute(hid_t loc, const char* name, const std::string& path) {
  if (H5Aexists(loc, name) <= 0) throw Error(path + " has no " + name + " attribute, which a ringscan result file has");
  Id a(H5Aopen(loc, name, H5P_DEFAULT), H5Aclose, std::string("cannot open attribute ") + name + " of " + path);
  Id ftype(H5Aget_type(a), H5Tclose, std::string("cannot read the type of attribute ") + name + " of " + path);
  if (H5Tget_class(ftype) != H5T_STRING || H5Tis_variable_str(ftype) <= 0)
    throw Error(path + ": attribute " + name + " is not a variable-length string, as in a ringscan result file");
  Id type = h5::utf8_string_type();
  char* value = nullptr;
  h5::check(H5Aread(a, type, &value), std::string("cannot read attribute ") + name + " of " + path);
  std::string out = value ? value : "";
  H5free_memory(value);
  return out;
}

int64_t read_int_attribute(hid_t loc, const char* name, const std::string& path) {
  if (H5Aexists(loc, name) <= 0) throw Error(path + " has no " + name + " attribute, which a ringscan result file has");
  Id a(H5Aopen(loc, name, H5P_DEFAULT), H5Aclose, std::string("cannot open attribute ") + name + " of " + path);
  Id ftype(H5Aget_type(a), H5Tclose, std::string("cannot read the type of attribute ") + name + " of " + path);
  if (H5Tget_class(ftype) != H5T_INTEGER)
    throw Error(path + ": attribute " + name + " is not an integer, as in a ringscan result file");
  int64_t v = 0;
  h5::check(H5Aread(a, H5T_NATIVE_INT64, &v), std::string("cannot read attribute ") + name + " of " + path);
  return v;
}

}  // namespace

namespace {

enum class Rows { kDocuments, kTokens, kFiles, kText };

// The numeric datasets, in the order they are created and written.
struct NumericColumn {
  const char* name;
  hid_t file_type, mem_type;
  Rows rows;
  uint64_t width = 0;  // 0: a column; else the columns of a 2-D dataset (embeddings)
};

// The lines of a document's text (1-based) that byte ranges cover, for ranges in
// increasing order (a codebase's files): one pass over the text for all of them.
class LineCounter {
 public:
  explicit LineCounter(const std::string& text) : text_(text) {}
  // [first, end) lines of the bytes [begin, end): the line `begin` is on, and one past
  // the last line with a byte of the range (a range ending in '\n' ends its line).
  std::pair<uint64_t, uint64_t> lines_of(uint64_t begin, uint64_t end) {
    const uint64_t first = line_at(begin);
    const uint64_t last = line_at(end);
    const bool open_line = end > begin && text_[std::min<uint64_t>(end, text_.size()) - 1] != '\n';
    return {first, last + (open_line ? 1 : 0)};
  }

 private:
  uint64_t line_at(uint64_t at) {
    at = std::min<uint64_t>(at, text_.size());
    if (at < pos_) pos_ = 0, line_ = 1;  // out of order: count again from the start
    line_ += static_cast<uint64_t>(std::count(text_.begin() + pos_, text_.begin() + at, '\n'));
    pos_ = at;
    return line_;
  }
  const std::string& text_;
  uint64_t pos_ = 0, line_ = 1;
};

std::vector<NumericColumn> numeric_columns(const FinalShape& s) {
  std::vector<NumericColumn> c = {
      {"/documents/n_tokens", H5T_STD_U64LE, H5T_NATIVE_UINT64, Rows::kDocuments},
      {"/documents/token_offset", H5T_STD_U64LE, H5T_NATIVE_UINT64, Rows::kDocuments},
      {"/documents/n_scored", H5T_STD_U64LE, H5T_NATIVE_UINT64, Rows::kDocuments},
      {"/documents/nll_sum", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, Rows::kDocuments},
      {"/documents/nll_mean", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, Rows::kDocuments},
      {"/documents/perplexity", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, Rows::kDocuments},
      {"/documents/truncated", H5T_STD_U8LE, H5T_NATIVE_UINT8, Rows::kDocuments},
      {"/documents/text_offset", H5T_STD_U64LE, H5T_NATIVE_UINT64, Rows::kDocuments},
      {"/documents/text_bytes", H5T_STD_U64LE, H5T_NATIVE_UINT64, Rows::kDocuments},
      {"/tokens/ids", H5T_STD_I32LE, H5T_NATIVE_INT32, Rows::kTokens},
      {"/tokens/logprob", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, Rows::kTokens},
      {"/tokens/text_begin", H5T_STD_U64LE, H5T_NATIVE_UINT64, Rows::kTokens},
      {"/tokens/text_end", H5T_STD_U64LE, H5T_NATIVE_UINT64, Rows::kTokens},
      {"/files/document", H5T_STD_U64LE, H5T_NATIVE_UINT64, Rows::kFiles},
      {"/files/token_begin", H5T_STD_U64LE, H5T_NATIVE_UINT64, Rows::kFiles},
      {"/files/token_end", H5T_STD_U64LE, H5T_NATIVE_UINT64, Rows::kFiles},
      {"/files/n_scored", H5T_STD_U64LE, H5T_NATIVE_UINT64, Rows::kFiles},
      {"/files/nll_sum", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, Rows::kFiles},
      {"/files/perplexity", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, Rows::kFiles},
      {"/files/text_begin", H5T_STD_U64LE, H5T_NATIVE_UINT64, Rows::kFiles},
      {"/files/text_end", H5T_STD_U64LE, H5T_NATIVE_UINT64, Rows::kFiles},
      {"/files/line_begin", H5T_STD_U64LE, H5T_NATIVE_UINT64, Rows::kFiles},
      {"/files/line_end", H5T_STD_U64LE, H5T_NATIVE_UINT64, Rows::kFiles},
      {"/text/utf8", H5T_STD_U8LE, H5T_NATIVE_UINT8, Rows::kText},
  };
  if (s.dim_mean) c.push_back({"/embeddings/mean", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, Rows::kDocuments, s.dim_mean});
  if (s.dim_last) c.push_back({"/embeddings/last", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, Rows::kDocuments, s.dim_last});
  return c;
}

uint64_t total_rows(const FinalShape& s, Rows r) {
  switch (r) {
    case Rows::kDocuments: return s.n_documents;
    case Rows::kTokens: return s.n_tokens;
    case Rows::kFiles: return s.n_file_rows;
    case Rows::kText: return s.n_text_bytes;
  }
  return 0;
}

template <class T>
void append(std::vector<char>& bytes, const T& v) {
  const char* p = reinterpret_cast<const char*>(&v);
  bytes.insert(bytes.end(), p, p + sizeof v);
}

template <class T>
void append(std::vector<char>& bytes, const std::vector<T>& v) {
  const char* p = reinterpret_cast<const char*>(v.data());
  bytes.insert(bytes.end(), p, p + v.size() * sizeof(T));
}

// This rank's rows of every numeric dataset, as the bytes to write (by dataset name),
// built in place: the tokens' rows are most of a rank's memory at the end.
std::map<std::string, std::vector<char>> numeric_rows(const std::vector<DocumentResult>& docs,
                                                      const FinalLayout& layout) {
  const uint64_t dim_mean = layout.shape.dim_mean, dim_last = layout.shape.dim_last;
  uint64_t tokens = 0;
  for (const DocumentResult& d : docs) tokens += d.token_ids.size();
  std::map<std::string, std::vector<char>> out;
  for (const NumericColumn& c : numeric_columns(layout.shape)) out[c.name];  // every column, empty or not
  out.at("/tokens/ids").reserve(tokens * sizeof(int32_t));
  out.at("/tokens/logprob").reserve(tokens * sizeof(float));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  uint64_t tok = layout.first_token, text = layout.first_text_byte;
  for (const DocumentResult& d : docs) {
    append(out.at("/documents/n_tokens"), uint64_t(d.token_ids.size()));
    append(out.at("/documents/token_offset"), tok);
    tok += d.token_ids.size();
    append(out.at("/documents/n_scored"), uint64_t(d.n_scored));
    append(out.at("/documents/nll_sum"), d.nll_sum);
    append(out.at("/documents/nll_mean"), d.nll_mean);
    append(out.at("/documents/perplexity"), d.perplexity);
    append(out.at("/documents/truncated"), uint8_t(d.truncated ? 1 : 0));
    append(out.at("/documents/text_offset"), text);
    append(out.at("/documents/text_bytes"), uint64_t(d.text.size()));
    text += d.text.size();
    out.at("/text/utf8").insert(out.at("/text/utf8").end(), d.text.begin(), d.text.end());
    append(out.at("/tokens/ids"), d.token_ids);
    if (d.logprob.empty()) append(out.at("/tokens/logprob"), std::vector<float>(d.token_ids.size(), nan));
    else append(out.at("/tokens/logprob"), d.logprob);
    // Tokens without offsets (none recorded) cover no text: [0, 0).
    const std::vector<uint64_t> none(d.text_begin.empty() ? d.token_ids.size() : 0, 0);
    append(out.at("/tokens/text_begin"), d.text_begin.empty() ? none : d.text_begin);
    append(out.at("/tokens/text_end"), d.text_end.empty() ? none : d.text_end);
    LineCounter lines(d.text);
    for (const FileResult& f : d.files) {
      const auto [line_begin, line_end] = lines.lines_of(f.text_begin, f.text_end);
      append(out.at("/files/line_begin"), line_begin);
      append(out.at("/files/line_end"), line_end);
      append(out.at("/files/document"), uint64_t(d.index));
      append(out.at("/files/token_begin"), uint64_t(f.token_begin));
      append(out.at("/files/token_end"), uint64_t(f.token_end));
      append(out.at("/files/n_scored"), uint64_t(f.n_scored));
      append(out.at("/files/nll_sum"), f.nll_sum);
      append(out.at("/files/perplexity"), f.perplexity);
      append(out.at("/files/text_begin"), uint64_t(f.text_begin));
      append(out.at("/files/text_end"), uint64_t(f.text_end));
    }
    // A document without an embedding gets a row of NaN.
    auto embedding = [&](const char* name, const std::vector<float>& v, uint64_t dim) {
      if (dim) append(out.at(name), v.empty() ? std::vector<float>(dim, nan) : v);
    };
    embedding("/embeddings/mean", d.embedding_mean, dim_mean);
    embedding("/embeddings/last", d.embedding_last, dim_last);
  }
  return out;
}

// Rows this rank writes of a dataset of `rows` kind.
std::pair<uint64_t, uint64_t> my_rows(const FinalLayout& l, const std::vector<DocumentResult>& docs, Rows rows) {
  uint64_t tokens = 0, files = 0, text = 0;
  for (const DocumentResult& d : docs) {
    tokens += d.token_ids.size();
    files += d.files.size();
    text += d.text.size();
  }
  if (rows == Rows::kDocuments) return {l.first_document, docs.size()};
  if (rows == Rows::kTokens) return {l.first_token, tokens};
  if (rows == Rows::kText) return {l.first_text_byte, text};
  return {l.first_file_row, files};
}

}  // namespace

FinalLayout final_layout(const std::vector<DocumentResult>& docs, uint64_t n_documents, uint64_t first_document,
                         uint64_t dim_mean, uint64_t dim_last, MPI_Comm comm) {
  uint64_t local[3] = {0, 0, 0};  // tokens, file rows, text bytes
  for (const DocumentResult& d : docs) {
    local[0] += d.token_ids.size();
    local[1] += d.files.size();
    local[2] += d.text.size();
  }
  uint64_t offset[3] = {0, 0, 0}, total[3] = {0, 0, 0};
  check_mpi(MPI_Exscan(local, offset, 3, MPI_UINT64_T, MPI_SUM, comm), "MPI_Exscan", "writing the result file");
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  if (rank == 0) offset[0] = offset[1] = offset[2] = 0;  // MPI_Exscan leaves rank 0's result undefined
  check_mpi(MPI_Allreduce(local, total, 3, MPI_UINT64_T, MPI_SUM, comm), "MPI_Allreduce", "writing the result file");
  FinalLayout l;
  l.shape = {n_documents, total[0], total[1], total[2], dim_mean, dim_last};
  l.first_document = first_document;
  l.first_token = offset[0];
  l.first_file_row = offset[1];
  l.first_text_byte = offset[2];
  return l;
}

std::string final_file_image(const FinalShape& shape, const FinalStrings& s, const Json& run_identity,
                             const Json& run_about, const std::string& documents_hash, const Json& attributes) {
  h5::quiet();
  const std::string path = "the result file (built in memory)";
  Id fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, "cannot create HDF5 file-access properties");
  h5::check(H5Pset_fapl_core(fapl, 1 << 20, /*backing_store=*/false), "cannot select HDF5's in-memory driver");
  Id fcpl = untimed(H5P_FILE_CREATE, "file");
  Id file(H5Fcreate("ringscan-result-image", H5F_ACC_TRUNC, fcpl, fapl), H5Fclose, "cannot create " + path);
  {
    std::map<std::string, Id> groups;
    for (const char* g : {"documents", "tokens", "files", "skipped", "text"}) groups.emplace(g, make_group(file, g, path));
    if (shape.dim_mean || shape.dim_last) groups.emplace("embeddings", make_group(file, "embeddings", path));
    for (const NumericColumn& c : numeric_columns(shape)) {
      std::vector<hsize_t> dims = {total_rows(shape, c.rows)};
      if (c.width) dims.push_back(c.width);
      make_dataset(file, c.name, c.file_type, dims, path, /*no_storage_yet=*/true);
    }
    hid_t g = groups.at("documents");
    string_column(g, "path", s.doc_path, path);
    string_column(g, "status", s.doc_status, path);
    string_column(g, "error", s.doc_error, path);
    string_column(g, "extra", s.doc_extra, path);
    string_column(g, "content_sha256", s.doc_content_sha256, path);
    string_column(groups.at("files"), "path", s.file_path, path);
    string_column(groups.at("files"), "status", s.file_status, path);
    string_column(groups.at("files"), "header", s.file_header, path);
    g = groups.at("skipped");
    Id ds = make_dataset(g, "document", H5T_STD_I64LE, {s.skipped_document.size()}, path);
    if (!s.skipped_document.empty())
      h5::check(H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, s.skipped_document.data()),
                "cannot write skipped/document of " + path);
    string_column(g, "path", s.skipped_path, path);
    string_column(g, "reason", s.skipped_reason, path);
    string_column(g, "detail", s.skipped_detail, path);
  }
  number_attribute<int64_t>(file, "format_version", H5T_STD_I64LE, H5T_NATIVE_INT64, kFormatVersion, path);
  string_attribute(file, "run_identity", run_identity.dump(), path);
  string_attribute(file, "run_about", run_about.dump(), path);
  string_attribute(file, "documents_hash", documents_hash, path);
  number_attribute<int64_t>(file, "n_documents", H5T_STD_I64LE, H5T_NATIVE_INT64, int64_t(shape.n_documents), path);
  for (const auto& [name, v] : attributes.items()) {
    if (v.is_string()) {
      string_attribute(file, name, v.get<std::string>(), path);
    } else if (v.is_boolean()) {
      number_attribute<int8_t>(file, name, H5T_STD_I8LE, H5T_NATIVE_INT8, v.get<bool>() ? 1 : 0, path);
    } else if (v.is_number_integer()) {
      number_attribute<int64_t>(file, name, H5T_STD_I64LE, H5T_NATIVE_INT64, v.get<int64_t>(), path);
    } else if (v.is_number()) {
      number_attribute<double>(file, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, v.get<double>(), path);
    } else {
      string_attribute(file, name, v.dump(), path);
    }
  }
  h5::check(H5Fflush(file, H5F_SCOPE_GLOBAL), "cannot flush " + path);
  const ssize_t size = H5Fget_file_image(file, nullptr, 0);
  if (size < 0) h5::fail("cannot read the image of " + path);
  std::string image(size_t(size), '\0');
  if (H5Fget_file_image(file, image.data(), image.size()) != size) h5::fail("cannot read the image of " + path);
  file.close("cannot close " + path);
  return image;
}

void write_final_numeric(const std::string& path, const FinalLayout& layout, const std::vector<DocumentResult>& docs,
                         MPI_Comm comm) {
  h5::quiet();
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  const std::vector<NumericColumn> columns = numeric_columns(layout.shape);
  const std::map<std::string, std::vector<char>> rows = numeric_rows(docs, layout);
  // Declared before the steps so that, when a step fails (on every rank: agreed), they
  // are closed on every rank in the same order as the exception leaves: collectively.
  Id fapl, file, dxpl;
  std::vector<Id> datasets;
  // First, before HDF5 opens it, the file is made as long as it can become (a hole: no
  // space yet): then closing it never has to extend it, which fails where the size of
  // files is limited (RLIMIT_FSIZE), leaving HDF5 unable to close it.
  agree(comm, [&] {
    if (rank != 0) return;
    uint64_t bound = file_size(path) + (uint64_t(64) << 10);
    for (const NumericColumn& c : columns)
      bound += total_rows(layout.shape, c.rows) * (c.width ? c.width : 1) * H5Tget_size(c.file_type) + 4096;
    set_file_size(path, bound);
  });
  agree(comm, [&] {
    fapl = Id(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, "cannot create HDF5 file-access properties");
    h5::check(H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL), "cannot select parallel HDF5 (MPI-IO) for " + path);
    file = Id(H5Fopen(path.c_str(), H5F_ACC_RDWR, fapl), H5Fclose, "cannot open result file " + path);
    dxpl = Id(H5Pcreate(H5P_DATASET_XFER), H5Pclose, "cannot create HDF5 transfer properties");
    h5::check(H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE), "cannot select collective MPI-IO for " + path);
  });
  // Opening for writing gives each dataset its file space (parallel HDF5 allocates early).
  agree(comm, [&] {
    for (const NumericColumn& c : columns)
      datasets.emplace_back(H5Dopen2(file, c.name, H5P_DEFAULT), H5Dclose,
                            std::string("cannot open dataset ") + c.name + " of " + path);
  });
  // Only metadata changed so far, in blocks the image already occupies: if the space for
  // the rows cannot be had, closing the file needs none either.
  agree(comm, [&] {
    if (rank != 0) return;
    uint64_t end = file_size(path);  // the bound: covers every dataset's storage, checked here
    uint64_t used = 0;
    for (size_t k = 0; k < columns.size(); ++k) {
      const haddr_t at = H5Dget_offset(datasets[k]);
      if (at == HADDR_UNDEF) continue;  // no storage: no rows
      used = std::max<uint64_t>(used, uint64_t(at) + uint64_t(H5Dget_storage_size(datasets[k])));
    }
    if (used > end) set_file_size(path, used);  // not expected
    reserve_file_space(path, used);
  });
  crash_point("final_space_reserved");
  for (size_t k = 0; k < columns.size(); ++k) {
    const NumericColumn& c = columns[k];
    const uint64_t total = total_rows(layout.shape, c.rows);
    if (total == 0) continue;  // no storage to write to (every rank knows: none calls)
    const auto [first, count] = my_rows(layout, docs, c.rows);
    agree(comm, [&] {
      write_rows(datasets[k], c.mem_type, first, count, c.width ? c.width : 1, rows.at(c.name).data(), dxpl,
                 std::string(c.name) + " of " + path);
    });
  }
  agree(comm, [&] {
    for (size_t k = datasets.size(); k-- > 0;)
      datasets[k].close(std::string("cannot close dataset ") + columns[k].name + " of " + path);
    file.close("cannot finish writing " + path);
  });
  // The hole beyond the end HDF5 recorded goes: the bytes are those of a file HDF5 sized.
  agree(comm, [&] {
    if (rank != 0) return;
    haddr_t eoa = 0;
    {
      Id f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose, "cannot reopen " + path);
      h5::check(H5Fget_eoa(f, &eoa), "cannot read the size of " + path);
    }
    set_file_size(path, uint64_t(eoa));
  });
}

FinalIdentity read_final_identity(const std::string& path) {
  h5::quiet();
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    h5::last_error();  // clear the stack
    throw Error(path + " is not an HDF5 file");
  }
  Id file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose, "cannot open " + path);
  const int64_t version = read_int_attribute(file, "format_version", path);
  if (version != kFormatVersion)
    throw Error(path + " has format_version " + std::to_string(version) + "; this ringscan writes version " +
                std::to_string(kFormatVersion));
  FinalIdentity id;
  id.run_identity = parse_json_relaxed(read_string_attribute(file, "run_identity", path), path + " run_identity");
  id.documents_hash = read_string_attribute(file, "documents_hash", path);
  if (H5Aexists(file, "run_about") > 0)
    id.run_about = parse_json_relaxed(read_string_attribute(file, "run_about", path), path + " run_about");
  id.n_documents = uint64_t(read_int_attribute(file, "n_documents", path));
  return id;
}

bool is_result_file(const std::string& path) {
  h5::quiet();
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    h5::last_error();  // clear the stack
    return false;
  }
  try {
    Id file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose, "cannot open " + path);
    return H5Aexists(file, "format_version") > 0 && H5Aexists(file, "run_identity") > 0;
  } catch (const Error&) {
    return false;
  }
}

}  // namespace ringscan::io
