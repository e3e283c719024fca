#include "io/final_file.h"

#include <hdf5.h>  // declares the MPI-IO driver when built parallel

#include <cstring>
#include <limits>

#include "io/hdf5_util.h"
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

Id make_dataset(hid_t loc, const std::string& name, hid_t file_type, std::initializer_list<hsize_t> dims,
                const std::string& path) {
  std::vector<hsize_t> d(dims);
  Id space(H5Screate_simple(int(d.size()), d.data(), nullptr), H5Sclose, "cannot create an HDF5 dataspace");
  Id dcpl = untimed(H5P_DATASET_CREATE, "dataset");
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

template <class T>
void write_column(hid_t group, const std::string& name, hid_t file_type, hid_t mem_type, uint64_t total, uint64_t first,
                  const std::vector<T>& values, hid_t dxpl, const std::string& path) {
  Id ds = make_dataset(group, name, file_type, {total}, path);
  // An empty dataset has no storage to write to (every rank knows total: no rank calls).
  if (total > 0) write_rows(ds, mem_type, first, values.size(), 1, values.data(), dxpl, name + " of " + path);
  ds.close("cannot close dataset " + name + " of " + path);
}

void check_mpi(int rc, const char* what) {
  if (rc != MPI_SUCCESS) throw Error(std::string(what) + " failed while writing the result file");
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
  if (H5Aexists(loc, name) <= 0) throw Error(path + " is not a ringscan result file (it has no " + name + " attribute)");
  Id a(H5Aopen(loc, name, H5P_DEFAULT), H5Aclose, std::string("cannot open attribute ") + name + " of " + path);
  Id ftype(H5Aget_type(a), H5Tclose, std::string("cannot read the type of attribute ") + name + " of " + path);
  if (H5Tget_class(ftype) != H5T_STRING || H5Tis_variable_str(ftype) <= 0)
    throw Error(path + " is not a ringscan result file (attribute " + name + " is not a variable-length string)");
  Id type = h5::utf8_string_type();
  char* value = nullptr;
  h5::check(H5Aread(a, type, &value), std::string("cannot read attribute ") + name + " of " + path);
  std::string out = value ? value : "";
  H5free_memory(value);
  return out;
}

int64_t read_int_attribute(hid_t loc, const char* name, const std::string& path) {
  if (H5Aexists(loc, name) <= 0) throw Error(path + " is not a ringscan result file (it has no " + name + " attribute)");
  Id a(H5Aopen(loc, name, H5P_DEFAULT), H5Aclose, std::string("cannot open attribute ") + name + " of " + path);
  Id ftype(H5Aget_type(a), H5Tclose, std::string("cannot read the type of attribute ") + name + " of " + path);
  if (H5Tget_class(ftype) != H5T_INTEGER)
    throw Error(path + " is not a ringscan result file (attribute " + name + " is not an integer)");
  int64_t v = 0;
  h5::check(H5Aread(a, H5T_NATIVE_INT64, &v), std::string("cannot read attribute ") + name + " of " + path);
  return v;
}

}  // namespace

void write_final_numeric(const std::string& path, uint64_t n_documents, uint64_t first,
                         const std::vector<DocumentResult>& docs, uint64_t dim_mean, uint64_t dim_last, MPI_Comm comm) {
  h5::quiet();
  // Row counts of this rank, and where its rows start (exclusive scan over ranks).
  uint64_t local[2] = {0, 0};  // tokens, file rows
  for (const DocumentResult& d : docs) {
    local[0] += d.token_ids.size();
    local[1] += d.files.size();
  }
  uint64_t offset[2] = {0, 0}, total[2] = {0, 0};
  check_mpi(MPI_Exscan(local, offset, 2, MPI_UINT64_T, MPI_SUM, comm), "MPI_Exscan");
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  if (rank == 0) offset[0] = offset[1] = 0;  // MPI_Exscan leaves rank 0's result undefined
  check_mpi(MPI_Allreduce(local, total, 2, MPI_UINT64_T, MPI_SUM, comm), "MPI_Allreduce");

  const size_t n = docs.size();
  std::vector<uint64_t> n_tokens(n), token_offset(n), n_scored(n);
  std::vector<double> nll_sum(n), nll_mean(n), perplexity(n);
  std::vector<uint8_t> truncated(n);
  std::vector<int32_t> ids;
  std::vector<float> logprob;
  ids.reserve(local[0]);
  logprob.reserve(local[0]);
  std::vector<uint64_t> f_document, f_begin, f_end, f_scored;
  std::vector<double> f_nll, f_ppl;
  std::vector<float> emb_mean(n * dim_mean), emb_last(n * dim_last);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  uint64_t tok = offset[0];
  for (size_t i = 0; i < n; ++i) {
    const DocumentResult& d = docs[i];
    n_tokens[i] = d.token_ids.size();
    token_offset[i] = tok;
    tok += d.token_ids.size();
    n_scored[i] = d.n_scored;
    nll_sum[i] = d.nll_sum;
    nll_mean[i] = d.nll_mean;
    perplexity[i] = d.perplexity;
    truncated[i] = d.truncated ? 1 : 0;
    ids.insert(ids.end(), d.token_ids.begin(), d.token_ids.end());
    if (d.logprob.empty()) logprob.insert(logprob.end(), d.token_ids.size(), nan);
    else logprob.insert(logprob.end(), d.logprob.begin(), d.logprob.end());
    for (const FileResult& f : d.files) {
      f_document.push_back(d.index);
      f_begin.push_back(f.token_begin);
      f_end.push_back(f.token_end);
      f_scored.push_back(f.n_scored);
      f_nll.push_back(f.nll_sum);
      f_ppl.push_back(f.perplexity);
    }
    auto put = [&](std::vector<float>& out, const std::vector<float>& v, uint64_t dim) {
      if (dim == 0) return;
      if (v.empty()) std::fill(out.begin() + i * dim, out.begin() + (i + 1) * dim, nan);
      else std::copy(v.begin(), v.end(), out.begin() + i * dim);
    };
    put(emb_mean, d.embedding_mean, dim_mean);
    put(emb_last, d.embedding_last, dim_last);
  }

  Id fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, "cannot create HDF5 file-access properties");
  h5::check(H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL), "cannot select parallel HDF5 (MPI-IO) for " + path);
  Id fcpl = untimed(H5P_FILE_CREATE, "file");
  Id file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl, fapl), H5Fclose, "cannot create result file " + path);
  Id dxpl(H5Pcreate(H5P_DATASET_XFER), H5Pclose, "cannot create HDF5 transfer properties");
  h5::check(H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE), "cannot select collective MPI-IO for " + path);

  {
    Id g = make_group(file, "documents", path);
    write_column(g, "n_tokens", H5T_STD_U64LE, H5T_NATIVE_UINT64, n_documents, first, n_tokens, dxpl, path);
    write_column(g, "token_offset", H5T_STD_U64LE, H5T_NATIVE_UINT64, n_documents, first, token_offset, dxpl, path);
    write_column(g, "n_scored", H5T_STD_U64LE, H5T_NATIVE_UINT64, n_documents, first, n_scored, dxpl, path);
    write_column(g, "nll_sum", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, n_documents, first, nll_sum, dxpl, path);
    write_column(g, "nll_mean", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, n_documents, first, nll_mean, dxpl, path);
    write_column(g, "perplexity", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, n_documents, first, perplexity, dxpl, path);
    write_column(g, "truncated", H5T_STD_U8LE, H5T_NATIVE_UINT8, n_documents, first, truncated, dxpl, path);
  }
  {
    Id g = make_group(file, "tokens", path);
    write_column(g, "ids", H5T_STD_I32LE, H5T_NATIVE_INT32, total[0], offset[0], ids, dxpl, path);
    write_column(g, "logprob", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, total[0], offset[0], logprob, dxpl, path);
  }
  {
    Id g = make_group(file, "files", path);
    write_column(g, "document", H5T_STD_U64LE, H5T_NATIVE_UINT64, total[1], offset[1], f_document, dxpl, path);
    write_column(g, "token_begin", H5T_STD_U64LE, H5T_NATIVE_UINT64, total[1], offset[1], f_begin, dxpl, path);
    write_column(g, "token_end", H5T_STD_U64LE, H5T_NATIVE_UINT64, total[1], offset[1], f_end, dxpl, path);
    write_column(g, "n_scored", H5T_STD_U64LE, H5T_NATIVE_UINT64, total[1], offset[1], f_scored, dxpl, path);
    write_column(g, "nll_sum", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, total[1], offset[1], f_nll, dxpl, path);
    write_column(g, "perplexity", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, total[1], offset[1], f_ppl, dxpl, path);
  }
  make_group(file, "skipped", path);
  if (dim_mean || dim_last) {
    Id g = make_group(file, "embeddings", path);
    if (dim_mean) {
      Id ds = make_dataset(g, "mean", H5T_IEEE_F32LE, {n_documents, dim_mean}, path);
      write_rows(ds, H5T_NATIVE_FLOAT, first, n, dim_mean, emb_mean.data(), dxpl, "embeddings/mean of " + path);
    }
    if (dim_last) {
      Id ds = make_dataset(g, "last", H5T_IEEE_F32LE, {n_documents, dim_last}, path);
      write_rows(ds, H5T_NATIVE_FLOAT, first, n, dim_last, emb_last.data(), dxpl, "embeddings/last of " + path);
    }
  }
  file.close("cannot finish writing " + path);
}

void write_final_strings(const std::string& path, const FinalStrings& s, const Json& run_identity,
                         const Json& run_about, const std::string& documents_hash, uint64_t n_documents,
                         const Json& attributes) {
  h5::quiet();
  Id file(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose, "cannot reopen result file " + path);
  {
    Id g(H5Gopen2(file, "documents", H5P_DEFAULT), H5Gclose, "cannot open group documents of " + path);
    string_column(g, "path", s.doc_path, path);
    string_column(g, "status", s.doc_status, path);
    string_column(g, "error", s.doc_error, path);
    string_column(g, "extra", s.doc_extra, path);
    string_column(g, "content_sha256", s.doc_content_sha256, path);
  }
  {
    Id g(H5Gopen2(file, "files", H5P_DEFAULT), H5Gclose, "cannot open group files of " + path);
    string_column(g, "path", s.file_path, path);
  }
  {
    Id g(H5Gopen2(file, "skipped", H5P_DEFAULT), H5Gclose, "cannot open group skipped of " + path);
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
  number_attribute<int64_t>(file, "n_documents", H5T_STD_I64LE, H5T_NATIVE_INT64, int64_t(n_documents), path);
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
  file.close("cannot finish writing " + path);
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

}  // namespace ringscan::io
