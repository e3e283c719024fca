// SHA-256 digests of large files that rarely change (a checkpoint's weights), for a
// run's identity, remembered between runs so that each checkpoint is read in full
// only once.
//
// The cache is one small JSON file per folder, keyed by each file's name, size and
// modification time (ns): a file whose size or mtime changed is hashed again. It lives
//   1. next to the files: `<dir>/.ringscan-sha256.json`, when that can be written;
//   2. else in the user's cache: `$XDG_CACHE_HOME/ringscan/sha256/<id>.json`
//      (`~/.cache/...` without XDG_CACHE_HOME), <id> derived from the folder's real path.
// Both are read (in that order); a missing, unreadable or damaged cache only means the
// files are hashed again. A cache that cannot be written anywhere is not an error: the
// digests are then computed on every run.
#pragma once
#include <string>
#include <vector>

namespace ringscan::io {

// Lowercase hex SHA-256 of a whole file (memory-mapped, read sequentially).
std::string file_sha256(const std::string& path);

struct FolderDigest {
  std::string sha256;                // over the list of (name, per-file digest), names sorted
  std::vector<std::string> files;    // per-file hex digests, in the order given
  std::vector<std::string> hashed;   // names that were hashed now (not found in a cache)
  std::string cache_written;         // the cache file updated, "" if none was
};

// Digests of `names` (file names inside `dir`). cache_files: where the cache may be,
// first choice first (default_digest_caches(dir)); tests pass their own.
FolderDigest folder_sha256(const std::string& dir, const std::vector<std::string>& names,
                           const std::vector<std::string>& cache_files);

// The two cache locations above for `dir`, in order.
std::vector<std::string> default_digest_caches(const std::string& dir);

}  // namespace ringscan::io
