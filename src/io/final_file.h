// Writing and recognising the final result file (docs/hdf5-schema.md). Used by the
// result store; a job does not call these directly.
#pragma once
#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "io/document_result.h"

namespace ringscan::io {

// The sizes of the numeric datasets, known on every rank before the file is written.
struct FinalShape {
  uint64_t n_documents = 0;
  uint64_t n_tokens = 0;                // rows of /tokens/*
  uint64_t n_file_rows = 0;             // rows of /files/*
  uint64_t n_text_bytes = 0;            // bytes of /text/utf8
  uint64_t dim_mean = 0, dim_last = 0;  // embedding dimensions; 0 = no such embedding
};

// Where this rank's rows go: its documents are the contiguous range [first_document,
// first_document + docs.size()) in index order (ranks in rank order cover every document),
// and its tokens and /files rows follow the same order.
struct FinalLayout {
  FinalShape shape;
  uint64_t first_document = 0, first_token = 0, first_file_row = 0, first_text_byte = 0;
};

// Collective: the shape and this rank's row offsets (an exclusive scan over the ranks).
// Embedding dimensions must already agree across ranks.
FinalLayout final_layout(const std::vector<DocumentResult>& docs, uint64_t n_documents, uint64_t first_document,
                         uint64_t dim_mean, uint64_t dim_last, MPI_Comm comm);

// Every string of the file, for all documents, gathered on the rank that writes them.
struct FinalStrings {
  std::vector<std::string> doc_path, doc_status, doc_error, doc_extra, doc_content_sha256;  // n_documents each
  std::vector<std::string> file_path, file_status, file_header;        // one per /files row
  std::vector<int64_t> skipped_document;  // -1: skipped by discovery
  std::vector<std::string> skipped_path, skipped_reason, skipped_detail;
};

// Root attributes the store writes itself; a caller's attributes may not use these names.
inline constexpr const char* kReservedAttributes[] = {"format_version", "run_identity", "run_about", "documents_hash",
                                                      "n_documents"};
inline constexpr int64_t kFormatVersion = 1;

// One process: the whole file except the numeric rows, as bytes: every group, the
// string datasets, /skipped/document, the root attributes (format_version, run_identity
// (JSON), run_about (JSON: what names the run for people, e.g. its model folder; not
// compared), documents_hash, n_documents, and each member of `attributes`: strings as
// strings, integers as int64, other numbers as float64, booleans as int8 0/1, anything
// else as its JSON text), and the numeric datasets with their shapes but no storage yet.
// Built in memory (HDF5's core driver): HDF5 never writes to the disk here, so the
// caller's plain write of these bytes is where a full disk shows, as an ordinary error.
std::string final_file_image(const FinalShape& shape, const FinalStrings& strings, const Json& run_identity,
                             const Json& run_about, const std::string& documents_hash, const Json& attributes);

// Collective over comm, after `path` holds final_file_image's bytes: opens it with
// parallel HDF5 (which gives the numeric datasets their storage), has rank 0 reserve that
// space on disk (posix_fallocate) before any row is written, then writes each rank's
// rows (collective MPI-IO). Each step is agreed: a failure on any rank (no space left, an
// I/O error) becomes the same Error on every rank, thrown after every rank has closed
// the file, so that no rank waits for another and no HDF5 id stays open. Once the space
// is reserved, writing the rows cannot run out of it.
void write_final_numeric(const std::string& path, const FinalLayout& layout, const std::vector<DocumentResult>& docs,
                         MPI_Comm comm);

struct FinalIdentity {
  Json run_identity;
  Json run_about = Json::object();  // {} when the file has none
  std::string documents_hash;
  uint64_t n_documents = 0;
};

// Reads the identity of a finished result file; Error when `path` is not one (not HDF5,
// no format_version, another format version, or attributes missing).
FinalIdentity read_final_identity(const std::string& path);

// Whether `path` (a regular file) is a result file of any ringscan version: HDF5 with the
// root attributes format_version and run_identity. The only kind of existing file that
// --overwrite may replace.
bool is_result_file(const std::string& path);

}  // namespace ringscan::io
