#include "io_test_util.h"

#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#ifndef RINGSCAN_SOURCE_DIR
#error "RINGSCAN_SOURCE_DIR must point at the repository (tools/h5check lives there)"
#endif

namespace ringscan::io::test {

namespace fs = std::filesystem;

TempDir::TempDir(const std::string& tag) {
  std::string pattern = "/tmp/ringscan-" + tag + "-XXXXXX";
  if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed for " + pattern);
  path_ = pattern;
  chmod(path_.c_str(), 0755);
}

TempDir::~TempDir() {
  // Tests take permissions away; give them back so everything can be removed.
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(path_, fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_symlink()) chmod(it->path().c_str(), it->is_directory() ? 0755 : 0644);
  }
  fs::remove_all(path_, ec);
}

void make_dirs(const std::string& path) { fs::create_directories(path); }

void write_file(const std::string& path, const std::string& bytes) {
  fs::path p(path);
  if (p.has_parent_path()) fs::create_directories(p.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  if (!out.flush()) throw std::runtime_error("cannot write " + path);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int run_unprivileged(const std::function<int()>& fn) {
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    if (geteuid() == 0) {
      const gid_t nogroup = 65534;
      if (setgroups(1, &nogroup) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(99);
    }
    int rc = 98;
    try {
      rc = fn();
    } catch (...) {
      rc = 97;
    }
    std::fflush(nullptr);
    _exit(rc);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 100 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

int run_command(const std::string& command, std::string* output) {
  std::string full = command + " 2>&1";
  FILE* p = popen(full.c_str(), "r");
  if (!p) throw std::runtime_error("cannot run " + command);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = pclose(p);
  if (output) *output = out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

Json h5_to_json(const std::string& h5_path) {
  const std::string tools = std::string(RINGSCAN_SOURCE_DIR) + "/tools/h5check";
  std::string python;
  if (run_command("bash '" + tools + "/ensure_venv.sh'", &python) != 0)
    throw std::runtime_error("tools/h5check/ensure_venv.sh failed (it needs python3 -m venv and PyPI): " + python);
  while (!python.empty() && (python.back() == '\n' || python.back() == '\r')) python.pop_back();
  python = python.substr(python.rfind('\n') + 1);  // the last line is the interpreter
  std::string out_file = "/tmp/ringscan-h5dump-XXXXXX";
  int fd = mkstemp(out_file.data());
  if (fd < 0) throw std::runtime_error("mkstemp failed");
  close(fd);
  std::string log;
  if (run_command("'" + python + "' '" + tools + "/h5_to_json.py' '" + h5_path + "' > '" + out_file + "'", &log) != 0)
    throw std::runtime_error("h5_to_json.py could not read " + h5_path + ": " + log);
  Json j = parse_json_relaxed(read_file(out_file), out_file);
  std::remove(out_file.c_str());
  return j;
}

}  // namespace ringscan::io::test
