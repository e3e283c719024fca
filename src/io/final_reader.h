// Reading a finished result file back into DocumentResults, so that a complete output
// can be reopened: when documents changed or failed since, the result store turns the
// file's other results back into a part file and computes only those documents again
// (result_store.h). The inverse of final_file_image + write_final_numeric: writing
// what this reads gives the same bytes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/document_result.h"
#include "io/hdf5_util.h"

namespace ringscan::io {

class FinalFileReader {
 public:
  // Opens `path` (serial HDF5) and reads the per-document columns; Error when a dataset
  // is missing or its length disagrees with n_documents / the other datasets.
  explicit FinalFileReader(const std::string& path);

  uint64_t n_documents() const { return status_.size(); }
  const std::string& status(uint64_t i) const { return status_[i]; }
  // "" when not known (a file written before content digests were recorded).
  const std::string& content_sha256(uint64_t i) const { return content_[i]; }
  uint64_t n_tokens(uint64_t i) const { return n_tokens_[i]; }

  // Document i's whole result, with its tokens, files, skipped files and embeddings.
  DocumentResult read(uint64_t i) const;

 private:
  static std::vector<std::string> strings_of_length(hid_t file, const char* name, uint64_t n, const std::string& where);
  std::string path_;
  h5::Id file_;
  std::vector<std::string> path_col_, status_, error_, extra_, content_;
  std::vector<uint64_t> n_tokens_, token_offset_, n_scored_;
  std::vector<double> nll_sum_, nll_mean_, perplexity_;
  std::vector<uint8_t> truncated_;
  // Text and offsets (docs/hdf5-schema.md); absent in files written before they were
  // stored: then documents read back without text.
  bool has_text_ = false;
  std::vector<uint64_t> text_offset_, text_bytes_;
  std::vector<std::string> f_status_, f_header_;
  std::vector<uint64_t> f_text_begin_, f_text_end_;
  // Rows of /files and /skipped per document: [first, last) into the columns below.
  std::vector<std::pair<uint64_t, uint64_t>> file_rows_;
  std::vector<std::string> f_path_;
  std::vector<uint64_t> f_begin_, f_end_, f_scored_;
  std::vector<double> f_nll_, f_ppl_;
  std::vector<std::vector<uint64_t>> skipped_rows_;
  std::vector<std::string> s_path_, s_reason_, s_detail_;
  uint64_t total_tokens_ = 0, dim_mean_ = 0, dim_last_ = 0;
};

}  // namespace ringscan::io
