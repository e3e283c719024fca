// The HDF5 file of `ringscan ask` (docs/hdf5-schema.md, "ringscan ask"):
// written once by rank 0 into `<out>.partial` and renamed into place.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "util/json_util.h"

namespace ringscan {

struct AnswerRow {
  std::string id, question, text, finish_reason;
  std::vector<int32_t> question_ids, answer_ids;
  double first_token_seconds = 0, decode_seconds = 0;
};

// attributes: root attributes as JSON (strings stay strings, integers int64,
// other numbers float64, anything else its JSON text).
void write_answers_file(const std::string& path, const std::vector<AnswerRow>& rows, const Json& attributes,
                        bool overwrite);

}  // namespace ringscan
