#include "io/fs_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <csignal>
#include <cstdlib>
#include <map>
#include <mutex>

#include "util/error.h"

namespace ringscan::io {

namespace {

std::string os_error() { return std::strerror(errno); }

void write_all(int fd, std::string_view bytes, const std::string& path) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::string err = os_error();
      close(fd);
      throw Error("cannot write " + path + ": " + err);
    }
    done += size_t(n);
  }
}

}  // namespace

std::string parent_dir(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

void fsync_dir(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open folder " + dir + " to sync it: " + os_error());
  if (fsync(fd) != 0 && errno != EINVAL) {  // EINVAL: the filesystem cannot sync folders
    std::string err = os_error();
    close(fd);
    throw Error("cannot sync folder " + dir + ": " + err);
  }
  close(fd);
}

void fsync_file(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open " + path + " to sync it: " + os_error());
  if (fsync(fd) != 0) {
    std::string err = os_error();
    close(fd);
    throw Error("cannot sync " + path + " to disk: " + err);
  }
  close(fd);
}

void write_new_file(const std::string& path, std::string_view bytes) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error("cannot create " + path + ": " + os_error());
  try {
    write_all(fd, bytes, path);  // closes fd when it throws
    if (fsync(fd) != 0) {
      std::string err = os_error();
      close(fd);
      throw Error("cannot sync " + path + " to disk: " + err);
    }
    if (close(fd) != 0) throw Error("cannot write " + path + ": " + os_error());
  } catch (const Error&) {
    unlink(path.c_str());  // a partial file is of no use, and holds space a full disk needs
    throw;
  }
}

void reserve_file_space(const std::string& path, uint64_t size) {
  if (size == 0) return;  // nothing to reserve (posix_fallocate refuses a length of 0)
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open " + path + " to reserve its space: " + os_error());
  int err = 0;
  do {
    err = posix_fallocate(fd, 0, off_t(size));
  } while (err == EINTR);
  close(fd);
  if (err != 0)
    throw Error("cannot reserve " + std::to_string(size) + " bytes for " + path + ": " + std::strerror(err));
}

void set_file_size(const std::string& path, uint64_t size) {
  if (truncate(path.c_str(), off_t(size)) != 0)
    throw Error("cannot reserve " + std::to_string(size) + " bytes for " + path + ": " + os_error());
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  const std::string tmp = path + ".tmp";
  write_new_file(tmp, bytes);
  crash_point("atomic_tmp_written");
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw Error("cannot rename " + tmp + " to " + path + ": " + os_error());
  crash_point("atomic_renamed");
  fsync_dir(parent_dir(path));
}

bool path_exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::vector<std::string> list_dir(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (!d) throw Error("cannot list folder " + dir + ": " + os_error());
  std::vector<std::string> names;
  errno = 0;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(std::move(n));
  }
  int err = errno;
  closedir(d);
  if (err != 0) throw Error("cannot list folder " + dir + ": " + std::strerror(err));
  std::sort(names.begin(), names.end());
  return names;
}

void remove_file(const std::string& path) {
  if (unlink(path.c_str()) != 0 && errno != ENOENT) throw Error("cannot remove " + path + ": " + os_error());
}

void remove_flat_dir(const std::string& dir) {
  if (!path_exists(dir)) return;
  for (const std::string& n : list_dir(dir)) remove_file(dir + "/" + n);
  if (rmdir(dir.c_str()) != 0 && errno != ENOENT) throw Error("cannot remove folder " + dir + ": " + os_error());
}

uint64_t file_size(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) throw Error("cannot stat " + path + ": " + os_error());
  return uint64_t(st.st_size);
}

std::string read_file_range(const std::string& path, uint64_t offset, uint64_t length) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open " + path + ": " + os_error());
  std::string out(length, '\0');
  uint64_t done = 0;
  while (done < length) {
    ssize_t n = pread(fd, out.data() + done, length - done, off_t(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      std::string err = os_error();
      close(fd);
      throw Error("cannot read " + path + ": " + err);
    }
    if (n == 0) {
      close(fd);
      throw Error(path + " is shorter than expected: wanted " + std::to_string(length) + " bytes at offset " +
                  std::to_string(offset));
    }
    done += uint64_t(n);
  }
  close(fd);
  return out;
}

std::string read_whole_file(const std::string& path) { return read_file_range(path, 0, file_size(path)); }

void crash_point(const char* name) {
  static const char* spec = std::getenv("RINGSCAN_IO_TEST_CRASH");
  if (!spec || !*spec) return;
  static std::mutex mu;
  static std::map<std::string, long> hits;
  std::string want = spec;
  long k = 1;
  if (size_t colon = want.find(':'); colon != std::string::npos) {
    k = std::atol(want.c_str() + colon + 1);
    want.resize(colon);
  }
  if (want != name) return;
  std::lock_guard<std::mutex> lock(mu);
  if (++hits[want] == k) raise(SIGKILL);
}

uint64_t fnv1a64(std::string_view bytes, uint64_t h) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace ringscan::io
