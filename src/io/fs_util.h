// Small POSIX file helpers for the crash-safe result store. Every failure is a
// ringscan::Error naming the path and the OS error.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ringscan::io {

// Writes `bytes` to `path` so that after a crash at any moment `path` is either absent
// (or its previous version) or complete: write `path`.tmp, fsync it, rename it over
// `path`, fsync the folder.
void write_file_atomic(const std::string& path, std::string_view bytes);

// Creates (or truncates) `path`, writes `bytes` and fsyncs it; on failure (e.g. no space
// left) the partial file is removed and an Error names the path and the OS error.
void write_new_file(const std::string& path, std::string_view bytes);

// Has the filesystem allocate bytes [0, size) of an existing file (posix_fallocate), so
// that writing inside that range cannot run out of space. Error: "cannot reserve N bytes
// for PATH: No space left on device".
void reserve_file_space(const std::string& path, uint64_t size);

// Sets the size of an existing file (truncate(2): extending adds a hole, no space).
// Error: "cannot reserve N bytes for PATH: File too large".
void set_file_size(const std::string& path, uint64_t size);

// Makes a rename or unlink inside `dir` durable.
void fsync_dir(const std::string& dir);
// Flushes a file's data to disk (e.g. before renaming it into place).
void fsync_file(const std::string& path);

bool path_exists(const std::string& path);  // lstat succeeds
bool is_directory(const std::string& path);  // stat follows links

std::vector<std::string> list_dir(const std::string& dir);  // names, sorted, without . and ..

// Removes a file (absent is fine) / a folder and the plain files in it.
void remove_file(const std::string& path);
void remove_flat_dir(const std::string& dir);

std::string read_whole_file(const std::string& path);
// `length` bytes at `offset`; an Error if the file is shorter.
std::string read_file_range(const std::string& path, uint64_t offset, uint64_t length);
uint64_t file_size(const std::string& path);

std::string parent_dir(const std::string& path);  // "." for a bare name

// Fault injection for the resume tests: when the environment variable
// RINGSCAN_IO_TEST_CRASH is "<name>" or "<name>:<k>", the process kills itself with
// SIGKILL the first (or k-th) time it reaches crash_point("<name>"). Unset: nothing.
void crash_point(const char* name);

// FNV-1a 64-bit: detects torn or damaged part files (not a security hash).
uint64_t fnv1a64(std::string_view bytes, uint64_t seed = 0xcbf29ce484222325ULL);
std::string hex64(uint64_t v);

}  // namespace ringscan::io
