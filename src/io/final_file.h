// Writing and recognising the final result file (docs/hdf5-schema.md). Used by the
// result store; a job does not call these directly.
#pragma once
#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "io/document_result.h"

namespace ringscan::io {

// Collective over comm. Creates `path` (replacing it) with parallel HDF5 and writes every
// numeric dataset; each rank writes the rows of its own documents, which are the
// contiguous range [first, first + docs.size()) in index order (ranks in rank order
// cover 0..n_documents-1). Embedding dimensions must already agree across ranks
// (0 = no such embedding in this run).
void write_final_numeric(const std::string& path, uint64_t n_documents, uint64_t first,
                         const std::vector<DocumentResult>& docs, uint64_t dim_mean, uint64_t dim_last, MPI_Comm comm);

// Every string of the file, for all documents, gathered on the rank that writes them.
struct FinalStrings {
  std::vector<std::string> doc_path, doc_status, doc_error, doc_extra, doc_content_sha256;  // n_documents each
  std::vector<std::string> file_path;                                   // one per /files row
  std::vector<int64_t> skipped_document;  // -1: skipped by discovery
  std::vector<std::string> skipped_path, skipped_reason, skipped_detail;
};

// Root attributes the store writes itself; a caller's attributes may not use these names.
inline constexpr const char* kReservedAttributes[] = {"format_version", "run_identity", "run_about", "documents_hash",
                                                      "n_documents"};
inline constexpr int64_t kFormatVersion = 1;

// One process (serial HDF5), after write_final_numeric: adds the string datasets and the
// root attributes: format_version, run_identity (JSON), run_about (JSON: what names the
// run for people, e.g. its model folder; not compared), documents_hash, n_documents, and
// each member of `attributes` (strings as strings, integers as int64, other numbers as
// float64, booleans as int8 0/1, anything else as its JSON text).
void write_final_strings(const std::string& path, const FinalStrings& strings, const Json& run_identity,
                         const Json& run_about, const std::string& documents_hash, uint64_t n_documents,
                         const Json& attributes);

struct FinalIdentity {
  Json run_identity;
  Json run_about = Json::object();  // {} when the file has none
  std::string documents_hash;
  uint64_t n_documents = 0;
};

// Reads the identity of a finished result file; Error when `path` is not one (not HDF5,
// no format_version, another format version, or attributes missing).
FinalIdentity read_final_identity(const std::string& path);

}  // namespace ringscan::io
