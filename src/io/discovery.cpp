#include "io/discovery.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "io/gitignore.h"
#include "io/glob.h"
#include "io/jsonl_input.h"
#include "io/utf8_check.h"
#include "util/error.h"
#include "util/json_util.h"

namespace ringscan::io {

namespace {

std::string os_error(int err) { return std::strerror(err); }

// Drops "." and empty components and a trailing '/', keeping ".." (collapsing it
// lexically would be wrong across symbolic links). "" and "./" become ".".
std::string clean_path(const std::string& p) {
  const bool absolute = !p.empty() && p[0] == '/';
  std::string out = absolute ? "/" : "";
  size_t pos = 0;
  while (pos <= p.size()) {
    size_t slash = p.find('/', pos);
    if (slash == std::string::npos) slash = p.size();
    std::string comp = p.substr(pos, slash - pos);
    pos = slash + 1;
    if (comp.empty() || comp == ".") continue;
    if (!out.empty() && out.back() != '/') out += '/';
    out += comp;
  }
  if (out.empty()) out = ".";
  return out;
}

std::string join(const std::string& dir, const std::string& rel) {
  if (dir == ".") return rel;
  if (!dir.empty() && dir.back() == '/') return dir + rel;
  return dir + "/" + rel;
}

std::string absolute_of(const std::string& cleaned) {
  if (!cleaned.empty() && cleaned[0] == '/') return cleaned;
  char buf[4096];
  if (!getcwd(buf, sizeof buf)) throw Error(std::string("cannot determine the current folder: ") + os_error(errno));
  return clean_path(join(buf, cleaned));
}

std::string trim(const std::string& s) {
  const char* ws = " \t\r\n";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

std::string parent_of(const std::string& cleaned) {
  size_t slash = cleaned.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return cleaned.substr(0, slash);
}

// A glob from --include/--exclude: without '/', it matches a name at any depth.
struct PathGlob {
  std::string pattern;
  bool whole_path = false;
  bool matches(const std::string& rel) const {
    if (whole_path) return glob_match(pattern, rel);
    size_t slash = rel.rfind('/');
    return glob_match(pattern, slash == std::string::npos ? rel : rel.substr(slash + 1));
  }
};

std::vector<PathGlob> compile_globs(const std::vector<std::string>& patterns, const char* option) {
  std::vector<PathGlob> out;
  for (const std::string& raw : patterns) {
    std::string p = raw;
    while (!p.empty() && p.back() == '/') p.pop_back();
    PathGlob g;
    g.whole_path = p.find('/') != std::string::npos;
    if (!p.empty() && p[0] == '/') p.erase(0, 1);
    if (p.empty()) throw Error(std::string("--") + option + " glob '" + raw + "' matches nothing; expected a pattern such as '*.py' or 'src/**'");
    g.pattern = std::move(p);
    out.push_back(std::move(g));
  }
  return out;
}

bool any_match(const std::vector<PathGlob>& globs, const std::string& rel) {
  for (const PathGlob& g : globs)
    if (g.matches(rel)) return true;
  return false;
}

// Kept by --include when the path or one of its parent folders matches.
bool included(const std::vector<PathGlob>& include, const std::string& rel) {
  if (include.empty()) return true;
  std::string path = rel;
  while (true) {
    if (any_match(include, path)) return true;
    size_t slash = path.rfind('/');
    if (slash == std::string::npos) return false;
    path.resize(slash);
  }
}

class Walker {
 public:
  Walker(const DiscoveryOptions& o)
      : opts_(o), include_(compile_globs(o.include, "include")), exclude_(compile_globs(o.exclude, "exclude")) {
    if (o.own_output.empty()) return;
    // Matched by folder identity and name, not by path: the output may be named through
    // other links than the inputs, and may not exist yet (a rerun then finds it).
    const std::string out = clean_path(o.own_output);
    struct stat st;
    if (stat(parent_of(out).c_str(), &st) != 0) return;
    own_dir_ = {st.st_dev, st.st_ino, parent_of(out)};
    const std::string base = out.substr(out.rfind('/') == std::string::npos ? 0 : out.rfind('/') + 1);
    for (const char* suffix : {"", ".parts", ".lock", ".tmp"}) own_names_.insert(base + suffix);
  }

  Discovery run() {
    for (const std::string& input : opts_.inputs) {
      if (!input.empty() && input[0] == '@') {
        add_list(input.substr(1));
      } else {
        add_input(input, "");
      }
    }
    return std::move(out_);
  }

 private:
  void skip(const std::string& path, const char* reason, std::string detail) {
    out_.skipped.push_back({utf8_sanitize(path), reason, std::move(detail)});
  }

  void add_list(const std::string& list_path) {
    if (list_path.empty()) throw Error("input '@' names no list file; expected @FILE with one path per line");
    std::string text;
    try {  // a regular file or a pipe, bounded (not /dev/zero, not a folder)
      text = read_text_file(list_path);
    } catch (const Error& e) {
      throw Error(std::string("input list: ") + e.what());
    }
    const std::string base = parent_of(clean_path(list_path));
    size_t pos = 0;
    for (int line_no = 1; pos < text.size(); ++line_no) {
      size_t eol = text.find('\n', pos);
      if (eol == std::string::npos) eol = text.size();
      std::string entry = trim(text.substr(pos, eol - pos));
      pos = eol + 1;
      const std::string where = " (line " + std::to_string(line_no) + " of " + list_path + ")";
      if (entry.find('\0') != std::string::npos)
        throw Error("input list " + list_path + ": line " + std::to_string(line_no) +
                    " holds a NUL byte; expected a text file with one path per line");
      if (entry.empty() || entry[0] == '#') continue;
      if (entry[0] != '/') entry = join(base, entry);
      add_input(entry, where);
    }
  }

  void add_stdin(const std::string& where) {
    if (!opts_.stdin_text) throw Error("input -" + where + " (stdin) can only be given on the command line, once");
    const std::string& text = *opts_.stdin_text;
    if (opts_.format == InputFormat::Jsonl) {
      add_jsonl("-", text);
    } else if (text.empty()) {
      skip("-", skip_reason::kEmpty, "stdin gave 0 bytes");
    } else {
      SourceFile f{"-", "", text.size()};
      f.text = opts_.stdin_text;
      add_document(Document{"-", false, {std::move(f)}}, "-");
    }
  }

  void add_jsonl(const std::string& source, const std::string& text) {
    JsonlFields fields;
    fields.id = opts_.jsonl_id;
    fields.text = opts_.jsonl_text;
    for (Document& d : jsonl_documents(source, text, fields, &out_.skipped)) out_.documents.push_back(std::move(d));
  }

  bool is_jsonl(const std::string& name) const {
    if (opts_.format != InputFormat::Auto) return opts_.format == InputFormat::Jsonl;
    return name.size() > 6 && name.compare(name.size() - 6, 6, ".jsonl") == 0;
  }

  void add_input(const std::string& given, const std::string& where) {
    // clean_path("") is "." (the current folder): an empty --input is a mistake, not a request.
    if (given.empty()) throw Error("input \"\"" + where + " names no path; expected a file, a directory or @LIST");
    if (given == "-") return add_stdin(where);
    const std::string name = clean_path(given);
    struct stat st;
    if (lstat(name.c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) throw Error("input " + given + where + " does not exist");
      throw Error("cannot access input " + given + where + ": " + os_error(errno));
    }
    if (S_ISLNK(st.st_mode) && stat(name.c_str(), &st) != 0) {
      if (errno == ELOOP) throw Error("input " + given + where + " is a symbolic link loop");
      if (errno == ENOENT) throw Error("input " + given + where + " is a broken symbolic link (its target does not exist)");
      throw Error("cannot access input " + given + where + ": " + os_error(errno));
    }
    const std::string abs = absolute_of(name);
    struct stat parent;
    const size_t slash = name.rfind('/');
    if (own_names_.count(slash == std::string::npos ? name : name.substr(slash + 1)) &&
        stat(parent_of(name).c_str(), &parent) == 0 && is_own_dir(parent))
      throw Error("input " + given + where + " is this run's own output (--out " + opts_.own_output +
                  ") or a file ringscan keeps next to it; expected documents");
    if (S_ISDIR(st.st_mode)) {
      add_directory(name, abs, st);
    } else if (S_ISREG(st.st_mode) && is_jsonl(name)) {
      if (!seen_.emplace(abs, out_.documents.size()).second) {
        skip(name, skip_reason::kDuplicate, "this JSONL file is already an input");
        return;
      }
      add_jsonl(name, read_text_file(name));
    } else if (S_ISREG(st.st_mode)) {
      if (check_file(name, abs, st)) add_document(Document{name, false, {SourceFile{name, abs, uint64_t(st.st_size)}}}, abs);
    } else {
      throw Error("input " + given + where + " is neither a regular file nor a directory");
    }
  }

  // Stat-level checks of a regular file; records the skip and returns false when unusable.
  bool check_file(const std::string& shown, const std::string& abs, const struct stat& st) {
    if (!is_valid_utf8(shown)) {
      skip(shown, skip_reason::kNonUtf8Name, "the path is not valid UTF-8");
      return false;
    }
    if (faccessat(AT_FDCWD, abs.c_str(), R_OK, AT_EACCESS) != 0) {
      skip(shown, skip_reason::kUnreadable, os_error(errno));
      return false;
    }
    if (st.st_size == 0) {
      skip(shown, skip_reason::kEmpty, "0 bytes");
      return false;
    }
    return true;
  }

  void add_document(Document doc, const std::string& key) {
    auto [it, fresh] = seen_.emplace(key, out_.documents.size());
    if (!fresh) {
      skip(doc.name, skip_reason::kDuplicate,
           "already document " + std::to_string(it->second) + " (" + out_.documents[it->second].name + ")");
      return;
    }
    out_.documents.push_back(std::move(doc));
  }

  void add_directory(const std::string& name, const std::string& abs, const struct stat& st) {
    auto [it, fresh] = seen_dirs_.emplace(abs, name);
    if (!fresh) {
      skip(name, skip_reason::kDuplicate, "the directory " + it->second + " is already an input");
      return;
    }
    files_.clear();
    rules_ = GitignoreRules();
    ancestors_.clear();
    ancestors_.push_back({st.st_dev, st.st_ino, name});
    walk(name, abs, "");
    std::sort(files_.begin(), files_.end(),
              [](const SourceFile& a, const SourceFile& b) { return a.path < b.path; });  // bytewise
    if (files_.empty()) {
      const bool reported = !out_.skipped.empty() && out_.skipped.back().path == utf8_sanitize(name) &&
                            out_.skipped.back().reason == skip_reason::kUnreadable;
      if (!reported)  // an unreadable input directory already has its warning
        skip(name, skip_reason::kNoFiles, "the directory holds no file that passed the filters and checks");
      return;
    }
    if (opts_.mode == DocumentMode::Codebase) {
      add_document(Document{name, true, std::move(files_)}, abs);
    } else {
      for (SourceFile& f : files_) {
        std::string shown = join(name, f.path);
        std::string key = f.abs_path;
        add_document(Document{shown, false, {SourceFile{shown, std::move(f.abs_path), f.bytes}}}, key);
      }
    }
    files_.clear();
  }

  void walk(const std::string& root_name, const std::string& dir_abs, const std::string& prefix) {
    const std::string shown_dir = prefix.empty() ? root_name : join(root_name, prefix);
    DIR* d = opendir(dir_abs.c_str());
    if (!d) {
      skip(shown_dir, skip_reason::kUnreadable, "cannot list the directory: " + os_error(errno));
      return;
    }
    std::vector<std::string> names;
    errno = 0;
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(std::move(n));
    }
    const int read_err = errno;
    closedir(d);
    if (read_err != 0) {
      skip(shown_dir, skip_reason::kUnreadable, "cannot list the directory: " + os_error(read_err));
      return;
    }
    std::sort(names.begin(), names.end());

    const size_t rules_mark = rules_.size();
    if (opts_.use_gitignore && std::binary_search(names.begin(), names.end(), ".gitignore")) {
      std::ifstream gi(join(dir_abs, ".gitignore"), std::ios::binary);
      if (gi) {
        std::string text((std::istreambuf_iterator<char>(gi)), std::istreambuf_iterator<char>());
        rules_.add_file(prefix, text);
      }
      // An unreadable .gitignore is reported when the walk reaches it as a file below.
    }

    const bool own_dir = is_own_dir(ancestors_.back());
    for (const std::string& n : names) {
      if (n == ".git") continue;  // git's own data, never a document
      if (own_dir && own_names_.count(n)) continue;  // this run's output and its parts
      const std::string rel = prefix.empty() ? n : prefix + "/" + n;
      const std::string abs = join(dir_abs, n);
      const std::string shown = join(root_name, rel);
      struct stat st;
      if (lstat(abs.c_str(), &st) != 0) {
        skip(shown, skip_reason::kUnreadable, os_error(errno));
        continue;
      }
      const char* link_problem = nullptr;
      std::string link_detail;
      if (S_ISLNK(st.st_mode) && stat(abs.c_str(), &st) != 0) {
        const int err = errno;
        link_problem = err == ELOOP ? skip_reason::kSymlinkLoop
                       : err == ENOENT ? skip_reason::kBrokenSymlink
                                       : skip_reason::kUnreadable;
        char target[4096];
        ssize_t len = readlink(abs.c_str(), target, sizeof target - 1);
        link_detail = len >= 0 ? "links to " + std::string(target, size_t(len)) + ": " + os_error(err) : os_error(err);
      }
      const bool is_dir = !link_problem && S_ISDIR(st.st_mode);
      if (opts_.use_gitignore && rules_.ignored(rel, is_dir)) continue;
      if (any_match(exclude_, rel)) continue;
      if (is_dir) {
        auto cycle = std::find_if(ancestors_.begin(), ancestors_.end(),
                                  [&](const Ancestor& a) { return a.dev == st.st_dev && a.ino == st.st_ino; });
        if (cycle != ancestors_.end()) {
          skip(shown, skip_reason::kDirectoryCycle, "leads back to " + cycle->shown + ", which is being walked");
          continue;
        }
        ancestors_.push_back({st.st_dev, st.st_ino, shown});
        walk(root_name, abs, rel);
        ancestors_.pop_back();
        continue;
      }
      if (!included(include_, rel)) continue;
      if (link_problem) {
        skip(shown, link_problem, link_detail);
      } else if (!S_ISREG(st.st_mode)) {
        skip(shown, skip_reason::kNotRegularFile,
             S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISSOCK(st.st_mode) ? "a socket" : "a device or other special file");
      } else if (opts_.mode == DocumentMode::Codebase ? check_file_in_codebase(shown, rel, abs, st)
                                                      : check_file(shown, abs, st)) {
        files_.push_back(SourceFile{rel, abs, uint64_t(st.st_size)});
      }
    }
    rules_.truncate(rules_mark);
  }

  bool check_file_in_codebase(const std::string& shown, const std::string& rel, const std::string& abs,
                              const struct stat& st) {
    if (!is_valid_utf8(rel)) {  // the header line names it, so it must be text
      skip(shown, skip_reason::kNonUtf8Name, "the path is not valid UTF-8");
      return false;
    }
    return check_file(shown, abs, st);
  }

  struct Ancestor {
    dev_t dev;
    ino_t ino;
    std::string shown;
  };

  bool is_own_dir(const Ancestor& a) const { return own_dir_ && own_dir_->dev == a.dev && own_dir_->ino == a.ino; }
  bool is_own_dir(const struct stat& st) const { return is_own_dir(Ancestor{st.st_dev, st.st_ino, ""}); }

  const DiscoveryOptions& opts_;
  std::vector<PathGlob> include_, exclude_;
  Discovery out_;
  std::map<std::string, size_t> seen_;         // absolute path -> document index
  std::map<std::string, std::string> seen_dirs_;  // absolute path -> name of input directories
  std::vector<SourceFile> files_;       // of the directory being walked
  GitignoreRules rules_;
  std::vector<Ancestor> ancestors_;
  std::optional<Ancestor> own_dir_;  // the folder of the run's output
  std::set<std::string> own_names_;  // the output's name there, and its .parts, .lock, .tmp
};

std::string describe(const std::string& reason) {
  static const std::map<std::string, std::string> text = {
      {skip_reason::kBinary, "binary file"},
      {skip_reason::kNonUtf8, "not valid UTF-8 text"},
      {skip_reason::kUnreadable, "cannot be read"},
      {skip_reason::kEmpty, "empty file"},
      {skip_reason::kBrokenSymlink, "broken symbolic link"},
      {skip_reason::kSymlinkLoop, "symbolic link loop"},
      {skip_reason::kDirectoryCycle, "directory cycle through a symbolic link"},
      {skip_reason::kNotRegularFile, "not a regular file"},
      {skip_reason::kNonUtf8Name, "file name is not UTF-8"},
      {skip_reason::kDuplicate, "already an input"},
      {skip_reason::kNoFiles, "no files"},
      {skip_reason::kNoReadableFiles, "no readable files"},
  };
  auto it = text.find(reason);
  return it == text.end() ? reason : it->second;
}

}  // namespace

DocumentMode parse_document_mode(const std::string& name) {
  if (name == "file") return DocumentMode::File;
  if (name == "codebase") return DocumentMode::Codebase;
  throw Error("document mode '" + name + "' is not known; expected 'file' or 'codebase'");
}

InputFormat parse_input_format(const std::string& name) {
  if (name == "auto") return InputFormat::Auto;
  if (name == "text") return InputFormat::Text;
  if (name == "jsonl") return InputFormat::Jsonl;
  throw Error("--input-format '" + name + "' is not known; expected 'auto', 'text' or 'jsonl'");
}

Discovery discover(const DiscoveryOptions& options) {
  if (options.inputs.empty()) throw Error("no input given; expected at least one file, directory or @list");
  return Walker(options).run();
}

std::string skip_warning(const SkippedFile& s) {
  std::string line = "ringscan: warning: skipping " + s.path + ": " + describe(s.reason);
  if (!s.detail.empty()) line += " (" + s.detail + ")";
  return line;
}

}  // namespace ringscan::io
