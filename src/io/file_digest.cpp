#include "io/file_digest.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "io/fs_util.h"
#include "util/sha256.h"
#include "util/error.h"
#include "util/json_util.h"

namespace ringscan::io {

namespace {

constexpr const char* kCacheFormat = "ringscan sha256 cache";
constexpr int kCacheVersion = 1;

struct FileStamp {
  uint64_t size = 0;
  int64_t mtime_ns = 0;
};

FileStamp stamp_of(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) throw Error("cannot read " + path + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw Error(path + " is not a regular file");
  return {uint64_t(st.st_size), int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

// The cache's entries, or an empty object when it is absent or not ours.
Json read_cache(const std::string& path) {
  if (!path_exists(path)) return Json::object();
  try {
    Json j = read_json_file(path);
    if (j.is_object() && j.value("format", "") == kCacheFormat && j.value("version", 0) == kCacheVersion &&
        j.contains("files") && j["files"].is_object())
      return j["files"];
  } catch (const std::exception&) {
  }
  return Json::object();  // damaged: the files are hashed again and the cache rewritten
}

// Atomic, with a name of our own so that two runs hashing at once do not tear it.
bool try_write_cache(const std::string& path, const Json& files) {
  try {
    std::string dir = parent_dir(path);
    if (!is_directory(dir)) {
      // The user cache's folders: create them (~/.cache/ringscan/sha256).
      std::string partial;
      for (size_t i = 1; i <= dir.size(); ++i)
        if (i == dir.size() || dir[i] == '/') {
          partial = dir.substr(0, i);
          if (!is_directory(partial) && mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) return false;
        }
    }
    const std::string tmp = path + "." + std::to_string(getpid()) + ".tmp";
    Json j = {{"format", kCacheFormat}, {"version", kCacheVersion}, {"files", files}};
    const std::string text = j.dump(1) + "\n";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    bool ok = ::write(fd, text.data(), text.size()) == ssize_t(text.size());
    ok = (::close(fd) == 0) && ok;
    if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
      ::unlink(tmp.c_str());
      return false;
    }
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

std::string file_sha256(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open " + path + " to hash it: " + std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    std::string err = std::strerror(errno);
    ::close(fd);
    throw Error("cannot read " + path + ": " + err);
  }
  const size_t size = size_t(st.st_size);
  if (size == 0) {
    ::close(fd);
    return ringscan::sha256_hex(std::string_view());
  }
  void* p = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) throw Error("cannot map " + path + " to hash it: " + std::strerror(errno));
  madvise(p, size, MADV_SEQUENTIAL);
  std::string digest = ringscan::sha256_hex(std::string_view(static_cast<const char*>(p), size));
  munmap(p, size);
  return digest;
}

std::vector<std::string> default_digest_caches(const std::string& dir) {
  std::vector<std::string> out = {dir + "/.ringscan-sha256.json"};
  std::string base;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x == '/') base = x;
  else if (const char* h = std::getenv("HOME"); h && *h) base = std::string(h) + "/.cache";
  if (!base.empty()) {
    char real[PATH_MAX];
    const std::string where = realpath(dir.c_str(), real) ? std::string(real) : dir;
    out.push_back(base + "/ringscan/sha256/" + ringscan::sha256_hex(where).substr(0, 32) + ".json");
  }
  return out;
}

FolderDigest folder_sha256(const std::string& dir, const std::vector<std::string>& names,
                           const std::vector<std::string>& cache_files) {
  std::vector<Json> caches;
  for (const std::string& c : cache_files) caches.push_back(read_cache(c));
  FolderDigest out;
  Json entries = Json::object();  // what the cache will hold: the files of this call
  for (const std::string& name : names) {
    const std::string path = dir + "/" + name;
    const FileStamp s = stamp_of(path);
    std::string digest;
    for (const Json& c : caches) {
      const Json e = c.value(name, Json());
      if (e.is_object() && e.value("size", uint64_t(0)) == s.size && e.value("mtime_ns", int64_t(-1)) == s.mtime_ns &&
          e.value("sha256", "").size() == 64) {
        digest = e["sha256"].get<std::string>();
        break;
      }
    }
    if (digest.empty()) {
      digest = file_sha256(path);
      // Changed while we read it: the digest may mix two versions; do not trust it.
      const FileStamp after = stamp_of(path);
      if (after.size != s.size || after.mtime_ns != s.mtime_ns)
        throw Error(path + " changed while ringscan was reading it; run again when it no longer changes");
      out.hashed.push_back(name);
    }
    entries[name] = {{"size", s.size}, {"mtime_ns", s.mtime_ns}, {"sha256", digest}};
    out.files.push_back(digest);
  }
  if (!out.hashed.empty())
    for (const std::string& c : cache_files)
      if (try_write_cache(c, entries)) {
        out.cache_written = c;
        break;
      }
  std::vector<std::pair<std::string, std::string>> sorted;
  for (size_t i = 0; i < names.size(); ++i) sorted.emplace_back(names[i], out.files[i]);
  std::sort(sorted.begin(), sorted.end());
  std::string list;
  for (const auto& [name, digest] : sorted) list += name + '\0' + digest + '\n';
  out.sha256 = ringscan::sha256_hex(list);
  return out;
}

}  // namespace ringscan::io
