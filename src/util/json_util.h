// JSON as Python writes it: json.dump emits bare Infinity, -Infinity and NaN
// (e.g. HF's `time_step_limit: [0.0, Infinity]`), which strict JSON parsers
// reject. We turn those tokens into strings before parsing and read numbers
// through json_number(), which understands them.
#pragma once
#include <nlohmann/json.hpp>
#include <cstddef>
#include <string>

namespace ringscan {

using Json = nlohmann::json;

// Parses `text` (read from `source`, named in errors). Throws ringscan::Error
// naming the source and the byte offset on malformed JSON, and naming the key
// when an object repeats one (JSON leaves that open; we refuse it rather than
// let the last one win silently).
Json parse_json_relaxed(const std::string& text, const std::string& source);

// Reads and parses a file; errors name the file.
Json read_json_file(const std::string& path);

// A number, one of the strings "Infinity", "-Infinity", "NaN", or
// transformers 5's {"__float__": "Infinity"}.
double json_number(const Json& v, const std::string& what);

// Writes JSON to a file (pretty, newline-terminated), replacing it atomically.
void write_json_file(const std::string& path, const Json& j);

// A regular file or a pipe, whole, of at most kMaxTextFileBytes; a folder, a
// device or anything longer is an Error naming the path.
inline constexpr size_t kMaxTextFileBytes = size_t(1) << 30;
std::string read_text_file(const std::string& path);
void write_text_file(const std::string& path, const std::string& text);

}  // namespace ringscan
