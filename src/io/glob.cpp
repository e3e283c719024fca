#include "io/glob.h"

namespace ringscan::io {

namespace {

// Matches one bracket expression starting at pattern[pi] == '['. Returns the index just
// past ']' and sets `matched`; returns npos when the bracket is unterminated (then '['
// is an ordinary character, as in fnmatch).
size_t match_class(std::string_view p, size_t pi, char c, bool& matched) {
  size_t i = pi + 1;
  bool negate = false;
  if (i < p.size() && (p[i] == '!' || p[i] == '^')) {
    negate = true;
    ++i;
  }
  bool hit = false;
  bool first = true;
  while (i < p.size() && (first || p[i] != ']')) {
    first = false;
    char lo = p[i];
    if (lo == '\\' && i + 1 < p.size()) lo = p[++i];
    char hi = lo;
    if (i + 2 < p.size() && p[i + 1] == '-' && p[i + 2] != ']') {
      hi = p[i + 2];
      if (hi == '\\' && i + 3 < p.size()) hi = p[++i + 2];
      i += 2;
    }
    if (static_cast<unsigned char>(lo) <= static_cast<unsigned char>(c) &&
        static_cast<unsigned char>(c) <= static_cast<unsigned char>(hi))
      hit = true;
    ++i;
  }
  if (i >= p.size()) return std::string_view::npos;
  matched = (hit != negate) && c != '/';
  return i + 1;
}

bool starts_component(std::string_view p, size_t i) { return i == 0 || p[i - 1] == '/'; }
bool ends_component(std::string_view p, size_t i) { return i + 2 >= p.size() || p[i + 2] == '/'; }

bool match_from(std::string_view p, size_t pi, std::string_view s, size_t si) {
  while (pi < p.size()) {
    char pc = p[pi];
    if (pc == '*') {
      const bool double_star = pi + 1 < p.size() && p[pi + 1] == '*';
      if (double_star && starts_component(p, pi) && ends_component(p, pi)) {
        // `**` as a whole component.
        if (pi + 2 >= p.size()) return true;  // trailing `/**` or a lone `**`: anything below
        // `**/rest`: rest may match here or after any '/' in s.
        const size_t rest = pi + 3;
        for (size_t k = si;; ++k) {
          if ((k == si || s[k - 1] == '/') && match_from(p, rest, s, k)) return true;
          if (k >= s.size()) return false;
        }
      }
      while (pi < p.size() && p[pi] == '*') ++pi;  // runs of stars act as one `*`
      if (pi == p.size()) return s.find('/', si) == std::string_view::npos;
      for (size_t k = si; k <= s.size(); ++k) {
        if (match_from(p, pi, s, k)) return true;
        if (k < s.size() && s[k] == '/') return false;
      }
      return false;
    }
    if (si >= s.size()) return false;
    char c = s[si];
    if (pc == '?') {
      if (c == '/') return false;
      ++pi;
      ++si;
      continue;
    }
    if (pc == '[') {
      bool matched = false;
      size_t next = match_class(p, pi, c, matched);
      if (next != std::string_view::npos) {
        if (!matched) return false;
        pi = next;
        ++si;
        continue;
      }
    }
    if (pc == '\\' && pi + 1 < p.size()) pc = p[++pi];
    if (pc != c) return false;
    ++pi;
    ++si;
  }
  return si == s.size();
}

}  // namespace

bool glob_match(std::string_view pattern, std::string_view path) { return match_from(pattern, 0, path, 0); }

}  // namespace ringscan::io
