#include "io/gitignore.h"

#include "io/glob.h"

namespace ringscan::io {

namespace {

// Drops trailing unquoted spaces (git: "Trailing spaces are ignored unless they are
// quoted with backslash").
std::string trim_trailing_spaces(std::string line) {
  size_t end = line.size();
  while (end > 0 && line[end - 1] == ' ') {
    size_t backslashes = 0;
    for (size_t i = end - 1; i > 0 && line[i - 1] == '\\'; --i) ++backslashes;
    if (backslashes % 2 == 1) break;  // `\ ` keeps this space
    --end;
  }
  line.resize(end);
  return line;
}

}  // namespace

void GitignoreRules::add_file(const std::string& base, std::string_view contents) {
  size_t pos = 0;
  while (pos <= contents.size()) {
    size_t nl = contents.find('\n', pos);
    if (nl == std::string_view::npos) nl = contents.size();
    std::string line(contents.substr(pos, nl - pos));
    pos = nl + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    line = trim_trailing_spaces(std::move(line));
    if (line.empty() || line[0] == '#') continue;
    Rule r;
    r.base = base;
    if (line[0] == '!') {
      r.negate = true;
      line.erase(0, 1);
    } else if (line.size() >= 2 && line[0] == '\\' && (line[1] == '!' || line[1] == '#')) {
      line.erase(0, 1);
    }
    if (!line.empty() && line.back() == '/') {
      r.dir_only = true;
      line.pop_back();
    }
    if (line.empty()) continue;
    r.anchored = line.find('/') != std::string::npos;
    if (line[0] == '/') line.erase(0, 1);
    if (line.empty()) continue;
    r.pattern = std::move(line);
    rules_.push_back(std::move(r));
  }
}

bool GitignoreRules::ignored(const std::string& relpath, bool is_dir) const {
  bool ignored = false;
  for (const Rule& r : rules_) {
    if (r.dir_only && !is_dir) continue;
    std::string_view below(relpath);
    if (!r.base.empty()) {
      if (below.size() <= r.base.size() || below.compare(0, r.base.size(), r.base) != 0 ||
          below[r.base.size()] != '/')
        continue;
      below.remove_prefix(r.base.size() + 1);
    }
    std::string_view subject = below;
    if (!r.anchored) {
      size_t slash = below.rfind('/');
      if (slash != std::string_view::npos) subject = below.substr(slash + 1);
    }
    if (glob_match(r.pattern, subject)) ignored = !r.negate;
  }
  return ignored;
}

}  // namespace ringscan::io
