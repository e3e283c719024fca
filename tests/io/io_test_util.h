// Helpers shared by the io tests: scratch folders, files, running a piece of a test as an
// unprivileged user (root reads everything, so permission cases need one), and reading an
// HDF5 file back with h5py (tools/h5check) rather than with ringscan's own code.
#pragma once
#include <functional>
#include <string>

#include "util/json_util.h"

namespace ringscan::io::test {

// A fresh folder under /tmp (world-searchable, so an unprivileged child can use it),
// removed with everything in it at the end of the scope.
class TempDir {
 public:
  explicit TempDir(const std::string& tag = "io");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

// Writes bytes, creating parent folders.
void write_file(const std::string& path, const std::string& bytes);
std::string read_file(const std::string& path);
void make_dirs(const std::string& path);

// Runs fn in a forked child that has dropped root (uid/gid 65534) when the test runs as
// root, and returns its exit status (fn's return value; 100 + signal if it died).
int run_unprivileged(const std::function<int()>& fn);

// The file dumped by tools/h5check/h5_to_json.py, made ready on first use by
// tools/h5check/ensure_venv.sh. Throws with the script's error output on failure.
Json h5_to_json(const std::string& h5_path);

// Runs a shell command, returning its exit status and (into *output) stdout+stderr.
int run_command(const std::string& command, std::string* output);

}  // namespace ringscan::io::test
