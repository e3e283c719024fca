#include "io/final_reader.h"

#include <cmath>

#include "util/error.h"

namespace ringscan::io {

namespace {

template <class T>
std::vector<T> column(hid_t file, const std::string& name, hid_t mem_type, uint64_t expected, const std::string& where) {
  const std::vector<hsize_t> dims = h5::dataset_dims(file, name, where);
  if (dims.size() != 1 || dims[0] != expected)
    throw Error(where + ": dataset " + name + " should have " + std::to_string(expected) + " rows");
  std::vector<T> v(expected);
  h5::read_rows(file, name, mem_type, 0, expected, 1, v.data(), where);
  return v;
}

uint64_t rows_of(hid_t file, const std::string& name, const std::string& where) {
  const std::vector<hsize_t> dims = h5::dataset_dims(file, name, where);
  if (dims.empty()) throw Error(where + ": dataset " + name + " is not a column");
  return dims[0];
}

bool all_nan(const std::vector<float>& v) {
  for (float x : v)
    if (!std::isnan(x)) return false;
  return true;
}

}  // namespace

FinalFileReader::FinalFileReader(const std::string& path) : path_(path) {
  h5::quiet();
  file_ = h5::Id(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose, "cannot open " + path);
  const std::string& w = path_;
  path_col_ = h5::read_string_column(file_, "/documents/path", w);
  const uint64_t n = path_col_.size();
  auto strings = [&](const char* name) {
    std::vector<std::string> v = h5::read_string_column(file_, name, w);
    if (v.size() != n) throw Error(w + ": dataset " + name + " should have " + std::to_string(n) + " rows");
    return v;
  };
  status_ = strings("/documents/status");
  error_ = strings("/documents/error");
  extra_ = strings("/documents/extra");
  // Written by every ringscan that records content digests; older files: unknown.
  if (H5Lexists(file_, "/documents/content_sha256", H5P_DEFAULT) > 0) content_ = strings("/documents/content_sha256");
  else content_.assign(n, "");
  n_tokens_ = column<uint64_t>(file_, "/documents/n_tokens", H5T_NATIVE_UINT64, n, w);
  token_offset_ = column<uint64_t>(file_, "/documents/token_offset", H5T_NATIVE_UINT64, n, w);
  n_scored_ = column<uint64_t>(file_, "/documents/n_scored", H5T_NATIVE_UINT64, n, w);
  nll_sum_ = column<double>(file_, "/documents/nll_sum", H5T_NATIVE_DOUBLE, n, w);
  nll_mean_ = column<double>(file_, "/documents/nll_mean", H5T_NATIVE_DOUBLE, n, w);
  perplexity_ = column<double>(file_, "/documents/perplexity", H5T_NATIVE_DOUBLE, n, w);
  truncated_ = column<uint8_t>(file_, "/documents/truncated", H5T_NATIVE_UINT8, n, w);
  total_tokens_ = rows_of(file_, "/tokens/ids", w);
  for (uint64_t i = 0; i < n; ++i)
    if (token_offset_[i] > total_tokens_ || n_tokens_[i] > total_tokens_ - token_offset_[i])
      throw Error(w + ": document " + std::to_string(i) + "'s tokens lie outside /tokens/ids");

  const uint64_t f = rows_of(file_, "/files/document", w);
  const std::vector<uint64_t> f_doc = column<uint64_t>(file_, "/files/document", H5T_NATIVE_UINT64, f, w);
  f_path_ = strings_of_length(file_, "/files/path", f, w);
  f_begin_ = column<uint64_t>(file_, "/files/token_begin", H5T_NATIVE_UINT64, f, w);
  f_end_ = column<uint64_t>(file_, "/files/token_end", H5T_NATIVE_UINT64, f, w);
  f_scored_ = column<uint64_t>(file_, "/files/n_scored", H5T_NATIVE_UINT64, f, w);
  f_nll_ = column<double>(file_, "/files/nll_sum", H5T_NATIVE_DOUBLE, f, w);
  f_ppl_ = column<double>(file_, "/files/perplexity", H5T_NATIVE_DOUBLE, f, w);
  has_text_ = H5Lexists(file_, "/text", H5P_DEFAULT) > 0;
  if (has_text_) {
    text_offset_ = column<uint64_t>(file_, "/documents/text_offset", H5T_NATIVE_UINT64, n, w);
    text_bytes_ = column<uint64_t>(file_, "/documents/text_bytes", H5T_NATIVE_UINT64, n, w);
    const uint64_t text_total = rows_of(file_, "/text/utf8", w);
    for (uint64_t i = 0; i < n; ++i)
      if (text_offset_[i] > text_total || text_bytes_[i] > text_total - text_offset_[i])
        throw Error(w + ": document " + std::to_string(i) + "'s text lies outside /text/utf8");
    f_status_ = strings_of_length(file_, "/files/status", f, w);
    f_header_ = strings_of_length(file_, "/files/header", f, w);
    f_text_begin_ = column<uint64_t>(file_, "/files/text_begin", H5T_NATIVE_UINT64, f, w);
    f_text_end_ = column<uint64_t>(file_, "/files/text_end", H5T_NATIVE_UINT64, f, w);
  }
  file_rows_.assign(n, {0, 0});
  for (uint64_t r = 0; r < f;) {  // rows are in document order
    const uint64_t d = f_doc[r];
    if (d >= n || (r > 0 && d < f_doc[r - 1])) throw Error(w + ": /files/document is not in document order");
    uint64_t e = r;
    while (e < f && f_doc[e] == d) ++e;
    file_rows_[d] = {r, e};
    r = e;
  }

  const uint64_t s = rows_of(file_, "/skipped/document", w);
  const std::vector<int64_t> s_doc = column<int64_t>(file_, "/skipped/document", H5T_NATIVE_INT64, s, w);
  s_path_ = strings_of_length(file_, "/skipped/path", s, w);
  s_reason_ = strings_of_length(file_, "/skipped/reason", s, w);
  s_detail_ = strings_of_length(file_, "/skipped/detail", s, w);
  skipped_rows_.assign(n, {});
  for (uint64_t r = 0; r < s; ++r) {
    if (s_doc[r] < -1 || s_doc[r] >= int64_t(n)) throw Error(w + ": /skipped/document names no document");
    if (s_doc[r] >= 0) skipped_rows_[uint64_t(s_doc[r])].push_back(r);
  }
  for (const char* which : {"mean", "last"}) {
    const std::string name = std::string("/embeddings/") + which;
    if (H5Lexists(file_, "/embeddings", H5P_DEFAULT) <= 0 || H5Lexists(file_, name.c_str(), H5P_DEFAULT) <= 0) continue;
    const std::vector<hsize_t> dims = h5::dataset_dims(file_, name, w);
    if (dims.size() != 2 || dims[0] != n) throw Error(w + ": dataset " + name + " should have " + std::to_string(n) + " rows");
    (which[0] == 'm' ? dim_mean_ : dim_last_) = dims[1];
  }
}

std::vector<std::string> FinalFileReader::strings_of_length(hid_t file, const char* name, uint64_t n,
                                                            const std::string& where) {
  std::vector<std::string> v = h5::read_string_column(file, name, where);
  if (v.size() != n) throw Error(where + ": dataset " + name + " should have " + std::to_string(n) + " rows");
  return v;
}

DocumentResult FinalFileReader::read(uint64_t i) const {
  if (i >= n_documents()) throw Error(path_ + " has no document " + std::to_string(i));
  const std::string& w = path_;
  DocumentResult r;
  r.index = i;
  r.path = path_col_[i];
  r.status = status_[i];
  r.error = error_[i];
  r.truncated = truncated_[i] != 0;
  r.token_ids.resize(n_tokens_[i]);
  h5::read_rows(file_, "/tokens/ids", H5T_NATIVE_INT32, token_offset_[i], n_tokens_[i], 1, r.token_ids.data(), w);
  r.logprob.resize(n_tokens_[i]);
  h5::read_rows(file_, "/tokens/logprob", H5T_NATIVE_FLOAT, token_offset_[i], n_tokens_[i], 1, r.logprob.data(), w);
  if (all_nan(r.logprob)) r.logprob.clear();  // written as NaN for "not scored"
  r.n_scored = n_scored_[i];
  r.nll_sum = nll_sum_[i];
  r.nll_mean = nll_mean_[i];
  r.perplexity = perplexity_[i];
  for (uint64_t k = file_rows_[i].first; k < file_rows_[i].second; ++k) {
    r.files.push_back({f_path_[k], f_begin_[k], f_end_[k], f_nll_[k], f_scored_[k], f_ppl_[k]});
    if (has_text_) {
      r.files.back().status = f_status_[k];
      r.files.back().header = f_header_[k];
      r.files.back().text_begin = f_text_begin_[k];
      r.files.back().text_end = f_text_end_[k];
    }
  }
  if (has_text_) {
    r.text.resize(text_bytes_[i]);
    h5::read_rows(file_, "/text/utf8", H5T_NATIVE_UINT8, text_offset_[i], text_bytes_[i], 1, r.text.data(), w);
    r.text_begin.resize(n_tokens_[i]);
    r.text_end.resize(n_tokens_[i]);
    h5::read_rows(file_, "/tokens/text_begin", H5T_NATIVE_UINT64, token_offset_[i], n_tokens_[i], 1, r.text_begin.data(), w);
    h5::read_rows(file_, "/tokens/text_end", H5T_NATIVE_UINT64, token_offset_[i], n_tokens_[i], 1, r.text_end.data(), w);
    // Written as [0, 0) rows for "no offsets": read back as none, so the file is rewritten the same.
    bool all_zero = true;
    for (size_t t = 0; t < r.text_end.size() && all_zero; ++t) all_zero = r.text_end[t] == 0;
    if (all_zero) r.text_begin.clear(), r.text_end.clear();
  }
  auto embedding = [&](const char* name, uint64_t dim) {
    std::vector<float> v(dim);
    h5::read_rows(file_, name, H5T_NATIVE_FLOAT, i, 1, dim, v.data(), w);
    if (all_nan(v)) v.clear();  // written as NaN for "none"
    return v;
  };
  r.embedding_mean = embedding("/embeddings/mean", dim_mean_);
  r.embedding_last = embedding("/embeddings/last", dim_last_);
  for (uint64_t k : skipped_rows_[i]) r.skipped_files.push_back({s_path_[k], s_reason_[k], s_detail_[k]});
  r.extra = parse_json_relaxed(extra_[i], w + " /documents/extra of document " + std::to_string(i));
  r.content_sha256 = content_[i];
  return r;
}

}  // namespace ringscan::io
