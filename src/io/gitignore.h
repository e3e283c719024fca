// .gitignore rules, as git applies them within one input directory:
//   - blank lines and lines starting with '#' are ignored; `\#` and `\!` start literal
//     patterns; trailing spaces are dropped unless quoted with '\';
//   - `!pattern` re-includes what an earlier rule excluded (last matching rule wins;
//     rules of a deeper .gitignore come after, so they win over shallower ones);
//   - `pattern/` matches directories only;
//   - a pattern with a '/' at its start or middle is anchored to the .gitignore's own
//     folder (`/x` matches only `x` there); one without matches the name at any depth
//     below that folder;
//   - `*`, `?`, `[...]`, `**` as in glob.h.
// A file inside an ignored directory cannot be re-included (the walk never enters the
// directory), as in git. Only .gitignore files inside the input directory are read:
// not those of folders above it, nor .git/info/exclude or the global excludes file.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace ringscan::io {

class GitignoreRules {
 public:
  // Adds the rules of the .gitignore found in folder `base` (relative to the input
  // directory, "" for the input directory itself).
  void add_file(const std::string& base, std::string_view contents);

  // Whether `relpath` (relative to the input directory) is ignored. Call only for paths
  // below every `base` given so far that applies; rules of other folders are skipped.
  bool ignored(const std::string& relpath, bool is_dir) const;

  // Rules of folders that are not ancestors of `dir` cannot match below it; the walk
  // drops them when it leaves a folder (rules added at or below `dir` are removed).
  size_t size() const { return rules_.size(); }
  void truncate(size_t n) { rules_.resize(n); }

 private:
  struct Rule {
    std::string base;     // folder of the .gitignore, "" or "a/b"
    std::string pattern;  // without `!`, leading '/', trailing '/'
    bool negate = false;
    bool dir_only = false;
    bool anchored = false;  // match the path relative to base, else only the last name
  };
  std::vector<Rule> rules_;
};

}  // namespace ringscan::io
