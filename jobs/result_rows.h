// A document's row in the result store (io::DocumentResult) from what the job
// computed: scored or embedded values, a generated summary, or why it was not
// computed.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/discovery.h"
#include "io/document_result.h"
#include "jobs/document_tokens.h"
#include "jobs/job_spec.h"
#include "runtime/decode.h"
#include "runtime/document_values.h"
#include "tokenizer/tokenizer.h"

namespace ringscan {

// Per-document result rows from the computed values; `failed` when they are not finite.
io::DocumentResult make_result(int64_t index, const io::Document& doc, const DocumentTokens& t,
                               const DocumentValues& v, const JobSpec& spec);

// A generated summary: its ids, text, why it stopped, counts and timing in `extra`.
io::DocumentResult generation_result(int64_t index, const io::Document& doc, bool truncated,
                                     const GenerationResult& g, const Tokenizer& tok);

// A document that was not computed: skipped (error = the skip reason) or failed
// (error = why); its tokens are kept when it had any, so n_tokens says how long it was.
io::DocumentResult not_computed(int64_t index, const io::Document& doc, const char* status, const std::string& error,
                                std::vector<int32_t> ids = {});
// The same for a tokenized document: its tokens, text and offsets are kept.
io::DocumentResult not_computed(int64_t index, const io::Document& doc, const char* status, const std::string& error,
                                const DocumentTokens& t);

}  // namespace ringscan
