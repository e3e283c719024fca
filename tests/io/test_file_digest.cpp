// Digests of large files for the run identity: SHA-256 as the standard defines it,
// cached by size and mtime, hashed again when either changes, and a cache that
// cannot be written next to the files falls back to the next location.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "io/file_digest.h"
#include "io/fs_util.h"
#include "io_test_util.h"
#include "util/json_util.h"

namespace ringscan::io {
namespace {

TEST(FileDigest, Sha256OfKnownContents) {
  test::TempDir t;
  test::write_file(t / "abc", "abc");
  test::write_file(t / "empty", "");
  EXPECT_EQ(file_sha256(t / "abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(file_sha256(t / "empty"), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(FileDigest, CachedBySizeAndMtimeAndHashedAgainWhenEitherChanges) {
  test::TempDir t;
  const std::string dir = t / "model";
  mkdir(dir.c_str(), 0755);
  test::write_file(dir + "/a.safetensors", "weights A");
  test::write_file(dir + "/b.safetensors", "weights B");
  const std::vector<std::string> caches = {dir + "/.ringscan-sha256.json"};
  const std::vector<std::string> names = {"a.safetensors", "b.safetensors"};

  FolderDigest first = folder_sha256(dir, names, caches);
  EXPECT_EQ(first.hashed, names);
  EXPECT_EQ(first.cache_written, caches[0]);
  EXPECT_EQ(first.files[0], file_sha256(dir + "/a.safetensors"));
  FolderDigest again = folder_sha256(dir, names, caches);
  EXPECT_TRUE(again.hashed.empty());  // from the cache
  EXPECT_EQ(again.sha256, first.sha256);
  // The order the files are listed in does not matter; their contents do.
  EXPECT_EQ(folder_sha256(dir, {"b.safetensors", "a.safetensors"}, caches).sha256, first.sha256);

  // Same size, other bytes, other mtime: hashed again, other digest.
  test::write_file(dir + "/a.safetensors", "weights Z");
  struct timeval later[2] = {{2000000000, 0}, {2000000000, 0}};
  utimes((dir + "/a.safetensors").c_str(), later);
  FolderDigest changed = folder_sha256(dir, names, caches);
  EXPECT_EQ(changed.hashed, std::vector<std::string>{"a.safetensors"});
  EXPECT_NE(changed.sha256, first.sha256);
  EXPECT_EQ(changed.files[1], first.files[1]);

  // The cache is trusted only for the size and mtime it recorded: a forged entry with
  // another size is ignored.
  Json forged = read_json_file(caches[0]);
  forged["files"]["b.safetensors"]["sha256"] = std::string(64, '0');
  forged["files"]["b.safetensors"]["size"] = 1;
  write_json_file(caches[0], forged);
  EXPECT_EQ(folder_sha256(dir, names, caches).files[1], first.files[1]);

  // A damaged cache only means hashing again.
  test::write_file(caches[0], "{not json");
  EXPECT_EQ(folder_sha256(dir, names, caches).sha256, changed.sha256);
}

TEST(FileDigest, UnwritableFirstCacheFallsBackToTheNext) {
  test::TempDir t;
  const std::string dir = t / "model";
  mkdir(dir.c_str(), 0755);
  test::write_file(dir + "/m.safetensors", "weights");
  // The first choice is in a folder that cannot be created (a file is in the way).
  test::write_file(t / "blocked", "");
  const std::vector<std::string> caches = {t / "blocked/sub/cache.json", t / "user-cache/ringscan/sha256/x.json"};
  FolderDigest d = folder_sha256(dir, {"m.safetensors"}, caches);
  EXPECT_EQ(d.cache_written, caches[1]);
  EXPECT_TRUE(path_exists(caches[1]));
  EXPECT_TRUE(folder_sha256(dir, {"m.safetensors"}, caches).hashed.empty());
  // Nowhere to write: still a digest, every time.
  FolderDigest none = folder_sha256(dir, {"m.safetensors"}, {t / "blocked/x.json"});
  EXPECT_EQ(none.sha256, d.sha256);
  EXPECT_EQ(none.cache_written, "");
}

TEST(FileDigest, DefaultCachesAreNextToTheFilesThenTheUserCache) {
  setenv("XDG_CACHE_HOME", "/tmp/ringscan-xdg-test", 1);
  const std::vector<std::string> c = default_digest_caches("/some/model");
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0], "/some/model/.ringscan-sha256.json");
  EXPECT_EQ(c[1].rfind("/tmp/ringscan-xdg-test/ringscan/sha256/", 0), 0u) << c[1];
  unsetenv("XDG_CACHE_HOME");
}

}  // namespace
}  // namespace ringscan::io
