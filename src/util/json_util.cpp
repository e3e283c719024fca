#include "util/json_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <vector>

#include "util/error.h"

namespace ringscan {

namespace {
// Quotes bare Infinity / -Infinity / NaN tokens that appear outside strings.
std::string quote_nonfinite(const std::string& text) {
  std::string out;
  out.reserve(text.size() + 16);
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < text.size()) out += text[++i];
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') { in_string = true; out += c; continue; }
    for (const char* tok : {"-Infinity", "Infinity", "NaN"}) {
      size_t n = std::char_traits<char>::length(tok);
      if (text.compare(i, n, tok) == 0) {
        out += '"';
        out += tok;
        out += '"';
        i += n - 1;
        c = 0;
        break;
      }
    }
    if (c) out += c;
  }
  return out;
}
}  // namespace

Json parse_json_relaxed(const std::string& text, const std::string& source) {
  // nlohmann keeps the last of repeated keys; a reader that keeps the first (or
  // refuses, as the safetensors format requires) would see another file. Track
  // the keys of every object being parsed and refuse a repeat.
  struct Open {
    bool object;
    std::string key;  // the member being parsed (objects)
    std::set<std::string> keys;
  };
  std::vector<Open> open;
  auto where = [&] {
    std::string path;
    for (size_t i = 0; i + 1 < open.size(); ++i) path += open[i].object ? "[\"" + open[i].key + "\"]" : "[...]";
    return path.empty() ? std::string("the top-level object") : "the object at " + path;
  };
  auto refuse_repeats = [&](int, Json::parse_event_t event, Json& parsed) {
    using E = Json::parse_event_t;
    if (event == E::object_start || event == E::array_start) open.push_back({event == E::object_start, "", {}});
    if (event == E::object_end || event == E::array_end) open.pop_back();
    if (event == E::key) {
      Open& o = open.back();
      o.key = parsed.get<std::string>();
      if (!o.keys.insert(o.key).second)
        throw Error(source + " repeats the key \"" + o.key + "\" in " + where() + "; each key may appear once");
    }
    return true;
  };
  try {
    return Json::parse(quote_nonfinite(text), refuse_repeats);
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for 1e400
    throw Error(source + " is not valid JSON (" + e.what() + ")");
  }
}

std::string read_text_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open " + path + " for reading: " + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st;
  if (fstat(fd, &st) != 0) throw Error("cannot read " + path + ": " + std::strerror(errno));
  // A folder reads as nothing and a device (/dev/zero) as endless bytes: neither is
  // what a user meant. Pipes are fine (`--ids-file <(...)`), up to the same bound.
  if (S_ISDIR(st.st_mode)) throw Error(path + " is a folder; expected a file");
  if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode))
    throw Error(path + " is a device or socket; expected a regular file");
  std::string out;
  char buf[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error("cannot read " + path + ": " + std::strerror(errno));
    if (n == 0) return out;
    if (out.size() + size_t(n) > kMaxTextFileBytes)
      throw Error(path + " is larger than " + std::to_string(kMaxTextFileBytes >> 20) +
                  " MiB; expected a text file of at most that size");
    out.append(buf, size_t(n));
  }
}

void write_text_file(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error("cannot open " + tmp + " for writing");
    out << text;
    if (!out.flush()) throw Error("cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw Error("cannot rename " + tmp + " to " + path);
}

Json read_json_file(const std::string& path) { return parse_json_relaxed(read_text_file(path), path); }

// Non-finite numbers are stored as the strings "Infinity"/"-Infinity"/"NaN" in
// Json values; write them back bare, as Python's json does, so that HF reads them.
void write_json_file(const std::string& path, const Json& j) {
  std::string text = j.dump(2);
  for (const char* tok : {"Infinity", "-Infinity", "NaN"}) {
    std::string quoted = std::string("\"") + tok + "\"";
    for (size_t pos = 0; (pos = text.find(quoted, pos)) != std::string::npos;) {
      // Only values, never keys.
      size_t prev = text.find_last_not_of(" \n", pos == 0 ? 0 : pos - 1);
      size_t next = text.find_first_not_of(" \n", pos + quoted.size());
      bool is_key = next != std::string::npos && text[next] == ':';
      if (!is_key && prev != std::string::npos && (text[prev] == ':' || text[prev] == '[' || text[prev] == ',')) {
        text.replace(pos, quoted.size(), tok);
        pos += std::strlen(tok);
      } else {
        pos += quoted.size();
      }
    }
  }
  write_text_file(path, text + "\n");
}

double json_number(const Json& v, const std::string& what) {
  if (v.is_number()) return v.get<double>();
  // transformers 5 writes non-finite floats as {"__float__": "Infinity"}.
  if (v.is_object() && v.size() == 1 && v.contains("__float__")) return json_number(v["__float__"], what);
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    if (s == "Infinity") return std::numeric_limits<double>::infinity();
    if (s == "-Infinity") return -std::numeric_limits<double>::infinity();
    if (s == "NaN") return std::numeric_limits<double>::quiet_NaN();
  }
  throw Error(what + " should be a number, got " + v.dump());
}

}  // namespace ringscan
