// Path globs as .gitignore and --include/--exclude write them (git's wildmatch with
// WM_PATHNAME): `*` and `?` never match '/', `[a-z]` / `[!a-z]` / `[^a-z]` classes,
// `\x` quotes x, and `**` as a whole path component matches any number (including
// zero) of components: `**/x`, `a/**/b`, `a/**`. A `**` that is not a whole
// component acts as `*`. Matching is on bytes (UTF-8 names compare bytewise).
#pragma once
#include <string_view>

namespace ringscan::io {

// True when `path` (components separated by '/', no leading or trailing '/') matches
// `pattern` in full.
bool glob_match(std::string_view pattern, std::string_view path);

}  // namespace ringscan::io
