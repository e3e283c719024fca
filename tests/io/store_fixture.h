// Deterministic results for result-store tests: document i always gets the same result,
// covering every kind of row (ok / skipped / failed, truncated, no log-probs, codebase
// files, skipped files inside a document, embeddings present or not, UTF-8 names).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/document_result.h"

namespace ringscan::io::test {

std::vector<std::string> fixture_names(uint64_t n);
DocumentResult fixture_result(uint64_t i);
std::vector<SkippedFile> fixture_discovery_skips();
Json fixture_identity();
// A content digest (64 lowercase hex digits) for document i at version v of its content.
std::string fixture_digest(uint64_t i, int v);
std::vector<std::string> fixture_digests(uint64_t n);  // every document at version 0
Json fixture_attributes();
inline constexpr uint64_t kFixtureDim = 5;  // embedding dimension

}  // namespace ringscan::io::test
