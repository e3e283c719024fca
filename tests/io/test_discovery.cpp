// Document discovery on real folders: ordering, .gitignore, globs, lists, and every
// stat-level skip reason (content checks are in test_text_reader.cpp).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <thread>

#include "io/discovery.h"
#include "io/text_reader.h"
#include "io_test_util.h"
#include "util/error.h"

namespace ringscan::io {
namespace {

using test::TempDir;
using test::write_file;

std::vector<std::string> names(const Discovery& d) {
  std::vector<std::string> out;
  for (const Document& doc : d.documents) out.push_back(doc.name);
  return out;
}

std::map<std::string, std::string> skips(const Discovery& d) {
  std::map<std::string, std::string> out;
  for (const SkippedFile& s : d.skipped) out[s.path] = s.reason;
  return out;
}

// A tree with something for every rule. Paths below are relative to the root.
void make_tree(const std::string& root) {
  write_file(root + "/.gitignore", "*.log\nbuild/\n!keep.log\n/anchored.txt\n");
  write_file(root + "/a.txt", "alpha\n");
  write_file(root + "/a/b.txt", "bravo\n");  // sorts after a.txt ('.' < '/')
  write_file(root + "/B.txt", "upper\n");    // uppercase sorts first
  write_file(root + "/b.log", "ignored\n");
  write_file(root + "/keep.log", "re-included\n");
  write_file(root + "/anchored.txt", "ignored at the root\n");
  write_file(root + "/sub/anchored.txt", "kept below the root\n");
  write_file(root + "/build/out.txt", "ignored folder\n");
  write_file(root + "/.git/config", "[core]\n");
  write_file(root + "/src/main.py", "print(1)\n");
  write_file(root + "/src/util/x.py", "x = 1\n");
  write_file(root + "/src/.gitignore", "*.gen\n");
  write_file(root + "/src/y.gen", "generated\n");
  write_file(root + "/empty.txt", "");
  test::make_dirs(root + "/cycle_dir");
  ASSERT_EQ(symlink("..", (root + "/cycle_dir/back").c_str()), 0);
  ASSERT_EQ(symlink("does-not-exist", (root + "/link_broken").c_str()), 0);
  ASSERT_EQ(symlink("loop2", (root + "/loop1").c_str()), 0);
  ASSERT_EQ(symlink("loop1", (root + "/loop2").c_str()), 0);
  ASSERT_EQ(mkfifo((root + "/fifo").c_str(), 0644), 0);
}

TEST(Discovery, FileModeSortsBytewiseHonoursGitignoreAndRecordsEverySkip) {
  TempDir t;
  const std::string root = t / "repo";
  make_tree(root);
  DiscoveryOptions o;
  o.inputs = {root};
  const Discovery d = discover(o);
  const std::vector<std::string> expected = {
      root + "/.gitignore", root + "/B.txt",  root + "/a.txt", root + "/a/b.txt", root + "/keep.log",
      root + "/src/.gitignore", root + "/src/main.py", root + "/src/util/x.py", root + "/sub/anchored.txt"};
  EXPECT_EQ(names(d), expected);
  for (const Document& doc : d.documents) {
    ASSERT_EQ(doc.files.size(), 1u);
    EXPECT_FALSE(doc.codebase);
    EXPECT_EQ(doc.files[0].path, doc.name);
    EXPECT_EQ(doc.files[0].abs_path, doc.name);  // the root is already absolute
  }
  EXPECT_EQ(d.documents[2].files[0].bytes, 6u);  // "alpha\n"
  const std::map<std::string, std::string> want = {
      {root + "/empty.txt", skip_reason::kEmpty},
      {root + "/cycle_dir/back", skip_reason::kDirectoryCycle},
      {root + "/link_broken", skip_reason::kBrokenSymlink},
      {root + "/loop1", skip_reason::kSymlinkLoop},
      {root + "/loop2", skip_reason::kSymlinkLoop},
      {root + "/fifo", skip_reason::kNotRegularFile},
  };
  EXPECT_EQ(skips(d), want);
  for (const SkippedFile& s : d.skipped) EXPECT_FALSE(s.detail.empty()) << s.path;
}

TEST(Discovery, GitignoreCanBeTurnedOffButDotGitIsAlwaysSkipped) {
  TempDir t;
  const std::string root = t / "repo";
  make_tree(root);
  DiscoveryOptions o;
  o.inputs = {root};
  o.use_gitignore = false;
  const std::vector<std::string> got = names(discover(o));
  for (const char* rel : {"/b.log", "/anchored.txt", "/build/out.txt", "/src/y.gen"})
    EXPECT_NE(std::find(got.begin(), got.end(), root + rel), got.end()) << rel;
  for (const std::string& n : got) EXPECT_EQ(n.find("/.git/"), std::string::npos) << n;
}

TEST(Discovery, CodebaseModeIsOneDocumentPerDirectoryWithHeaders) {
  TempDir t;
  const std::string root = t / "proj";
  write_file(root + "/z.txt", "last");  // no final newline: one is added after it
  write_file(root + "/a.txt", "first\n");
  write_file(root + "/d/m.txt", "middle\n");
  write_file(t / "single.txt", "alone\n");
  DiscoveryOptions o;
  o.inputs = {root, t / "single.txt"};
  o.mode = DocumentMode::Codebase;
  const Discovery d = discover(o);
  ASSERT_EQ(d.documents.size(), 2u);
  const Document& cb = d.documents[0];
  EXPECT_EQ(cb.name, root);
  EXPECT_TRUE(cb.codebase);
  ASSERT_EQ(cb.files.size(), 3u);
  EXPECT_EQ(cb.files[0].path, "a.txt");
  EXPECT_EQ(cb.files[1].path, "d/m.txt");
  EXPECT_EQ(cb.files[2].path, "z.txt");
  EXPECT_EQ(cb.files[1].abs_path, root + "/d/m.txt");
  // A file named directly is its own document, without a header.
  EXPECT_EQ(d.documents[1].name, t / "single.txt");
  EXPECT_FALSE(d.documents[1].codebase);

  const LoadedDocument loaded = load_document(cb);
  ASSERT_TRUE(loaded.ok());
  ASSERT_EQ(loaded.pieces.size(), 3u);
  EXPECT_EQ(loaded.text(),
            "### FILE: a.txt\nfirst\n"
            "### FILE: d/m.txt\nmiddle\n"
            "### FILE: z.txt\nlast\n");
  EXPECT_EQ(loaded.pieces[1].header_bytes, std::string("### FILE: d/m.txt\n").size());
  EXPECT_EQ(load_document(d.documents[1]).text(), "alone\n");
}

TEST(Discovery, IncludeAndExcludeGlobs) {
  TempDir t;
  const std::string root = t / "r";
  write_file(root + "/top.py", "1\n");
  write_file(root + "/readme.txt", "2\n");
  write_file(root + "/src/a.py", "3\n");
  write_file(root + "/src/util/b.py", "4\n");
  write_file(root + "/src/util/c.txt", "5\n");
  write_file(root + "/vendor/v.py", "6\n");
  auto run = [&](std::vector<std::string> inc, std::vector<std::string> exc) {
    DiscoveryOptions o;
    o.inputs = {root};
    o.include = std::move(inc);
    o.exclude = std::move(exc);
    std::vector<std::string> rel;
    for (const std::string& n : names(discover(o))) rel.push_back(n.substr(root.size() + 1));
    return rel;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(run({"*.py"}, {}), (V{"src/a.py", "src/util/b.py", "top.py", "vendor/v.py"}));
  EXPECT_EQ(run({"src/**/*.py"}, {}), (V{"src/a.py", "src/util/b.py"}));
  EXPECT_EQ(run({"src"}, {}), (V{"src/a.py", "src/util/b.py", "src/util/c.txt"}));  // a folder includes its files
  EXPECT_EQ(run({}, {"vendor", "*.txt"}), (V{"src/a.py", "src/util/b.py", "top.py"}));
  EXPECT_EQ(run({"*.py"}, {"src/util"}), (V{"src/a.py", "top.py", "vendor/v.py"}));
  EXPECT_EQ(run({"/top.py"}, {}), (V{"top.py"}));
  // Globs do not filter a file named directly.
  DiscoveryOptions o;
  o.inputs = {root + "/readme.txt"};
  o.include = {"*.py"};
  EXPECT_EQ(names(discover(o)), (V{root + "/readme.txt"}));
}

TEST(Discovery, ListFileResolvesRelativePathsAgainstItsFolder) {
  TempDir t;
  write_file(t / "data/one.txt", "1\n");
  write_file(t / "data/two.txt", "2\n");
  write_file(t / "data/dir/three.txt", "3\n");
  write_file(t / "other.txt", "4\n");
  write_file(t / "data/inputs.lst",
             "# the list\n"
             "\n"
             "two.txt\n"
             "  one.txt  \r\n"
             "dir\n" +
                 t.path() + "/other.txt\n");
  DiscoveryOptions o;
  o.inputs = {"@" + t / "data/inputs.lst"};
  EXPECT_EQ(names(discover(o)), (std::vector<std::string>{t / "data/two.txt", t / "data/one.txt",
                                                          t / "data/dir/three.txt", t / "other.txt"}));
  write_file(t / "data/bad.lst", "one.txt\n\nmissing.txt\n");
  o.inputs = {"@" + t / "data/bad.lst"};
  try {
    discover(o);
    FAIL() << "a missing list entry must be an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(t / "data/missing.txt"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("line 3 of"), std::string::npos) << e.what();
  }
  o.inputs = {"@" + t / "nope.lst"};
  EXPECT_THROW(discover(o), Error);
}

TEST(Discovery, MissingInputsAreErrorsNamingThePath) {
  TempDir t;
  DiscoveryOptions o;
  o.inputs = {t / "absent.txt"};
  try {
    discover(o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "input " + t / "absent.txt" + " does not exist");
  }
  ASSERT_EQ(symlink("nowhere", (t / "dangling").c_str()), 0);
  o.inputs = {t / "dangling"};
  try {
    discover(o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("broken symbolic link"), std::string::npos) << e.what();
  }
  ASSERT_EQ(symlink("self", (t / "self").c_str()), 0);
  o.inputs = {t / "self"};
  EXPECT_THROW(discover(o), Error);
  o.inputs = {};
  EXPECT_THROW(discover(o), Error);
  EXPECT_THROW(parse_document_mode("files"), Error);
  EXPECT_EQ(parse_document_mode("codebase"), DocumentMode::Codebase);
}

// clean_path("") is ".": an empty --input used to scan the current folder silently.
TEST(Discovery, AnEmptyInputIsRefused) {
  TempDir t;
  write_file(t / "a.txt", "a\n");
  DiscoveryOptions o;
  o.inputs = {t / "a.txt", ""};
  try {
    discover(o);
    FAIL() << "an empty input must be an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "input \"\" names no path; expected a file, a directory or @LIST");
  }
}

// A list is read whole and bounded: a device (/dev/zero once read without end), a
// folder, or a line with a NUL byte (which would name a shorter path) is refused.
TEST(Discovery, ListFilesMustBeTextFilesOrPipes) {
  TempDir t;
  write_file(t / "a.txt", "a\n");
  DiscoveryOptions o;
  o.inputs = {"@/dev/zero"};
  try {
    discover(o);
    FAIL() << "@/dev/zero must be refused";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "input list: /dev/zero is a device or socket; expected a regular file");
  }
  test::make_dirs(t / "folder");
  o.inputs = {"@" + t / "folder"};
  try {
    discover(o);
    FAIL() << "a folder as a list must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(t / "folder is a folder"), std::string::npos) << e.what();
  }
  write_file(t / "nul.lst", std::string("a.txt\n") + "a.txt" + std::string(1, '\0') + "junk\n");
  o.inputs = {"@" + t / "nul.lst"};
  try {
    discover(o);
    FAIL() << "a NUL byte in a list must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 2 holds a NUL byte"), std::string::npos) << e.what();
  }
  // A pipe is a fine list (e.g. @<(find ...)).
  ASSERT_EQ(mkfifo((t / "pipe").c_str(), 0644), 0);
  std::thread writer([&] { write_file(t / "pipe", t / "a.txt\n"); });
  o.inputs = {"@" + t / "pipe"};
  const Discovery d = discover(o);
  writer.join();
  EXPECT_EQ(names(d), (std::vector<std::string>{t / "a.txt"}));
}

TEST(Discovery, SymlinkedFoldersAreFollowedOnceAndCyclesStop) {
  TempDir t;
  const std::string root = t / "r";
  write_file(root + "/real/f.txt", "f\n");
  ASSERT_EQ(symlink("real", (root + "/alias").c_str()), 0);              // a second name: walked
  ASSERT_EQ(symlink("../..", (root + "/real/up").c_str()), 0);           // out of and above the root: walked once
  ASSERT_EQ(symlink("..", (root + "/real/back").c_str()), 0);            // back to the root: a cycle
  ASSERT_EQ(symlink(root.c_str(), (root + "/real/abs_back").c_str()), 0);  // same, absolute
  DiscoveryOptions o;
  o.inputs = {root};
  o.exclude = {"up"};  // keep the test inside the temp folder
  const Discovery d = discover(o);
  EXPECT_EQ(names(d), (std::vector<std::string>{root + "/alias/f.txt", root + "/real/f.txt"}));
  const std::map<std::string, std::string> want = {
      {root + "/alias/back", skip_reason::kDirectoryCycle},
      {root + "/alias/abs_back", skip_reason::kDirectoryCycle},
      {root + "/real/back", skip_reason::kDirectoryCycle},
      {root + "/real/abs_back", skip_reason::kDirectoryCycle},
  };
  EXPECT_EQ(skips(d), want);
}

TEST(Discovery, DuplicatesEmptyFoldersAndBadNames) {
  TempDir t;
  const std::string root = t / "r";
  write_file(root + "/x.txt", "x\n");
  write_file(root + std::string("/bad\xff.txt"), "bad name\n");
  test::make_dirs(t / "hollow");
  DiscoveryOptions o;
  o.inputs = {root, root + "/x.txt", root + "/", t / "hollow"};
  const Discovery d = discover(o);
  EXPECT_EQ(names(d), (std::vector<std::string>{root + "/x.txt"}));
  ASSERT_EQ(d.skipped.size(), 4u);
  EXPECT_EQ(d.skipped[0].reason, skip_reason::kNonUtf8Name);
  EXPECT_EQ(d.skipped[0].path, root + "/bad\xEF\xBF\xBD.txt");  // reported with U+FFFD
  EXPECT_EQ(d.skipped[1].reason, skip_reason::kDuplicate);
  EXPECT_EQ(d.skipped[1].path, root + "/x.txt");
  EXPECT_EQ(d.skipped[2].reason, skip_reason::kDuplicate);
  EXPECT_EQ(d.skipped[2].path, root);
  EXPECT_EQ(d.skipped[3].reason, skip_reason::kNoFiles);
  EXPECT_EQ(d.skipped[3].path, t / "hollow");
  EXPECT_EQ(skip_warning(d.skipped[3]), "ringscan: warning: skipping " + t / "hollow" +
                                            ": no files (the directory holds no file that passed the filters and checks)");
}

TEST(Discovery, RelativeInputsKeepTheirSpelling) {
  TempDir t;
  write_file(t / "w/p/q.txt", "q\n");
  char cwd[4096];
  ASSERT_NE(getcwd(cwd, sizeof cwd), nullptr);
  ASSERT_EQ(chdir((t / "w").c_str()), 0);
  DiscoveryOptions o;
  o.inputs = {"./p//"};
  Discovery d;
  EXPECT_NO_THROW(d = discover(o));
  o.inputs = {"."};
  o.mode = DocumentMode::Codebase;
  Discovery cb;
  EXPECT_NO_THROW(cb = discover(o));
  ASSERT_EQ(chdir(cwd), 0);
  ASSERT_EQ(d.documents.size(), 1u);
  EXPECT_EQ(d.documents[0].name, "p/q.txt");
  EXPECT_EQ(d.documents[0].files[0].abs_path, t / "w/p/q.txt");
  ASSERT_EQ(cb.documents.size(), 1u);
  EXPECT_EQ(cb.documents[0].name, ".");
  EXPECT_EQ(cb.documents[0].files[0].path, "p/q.txt");
}

TEST(Discovery, UnreadableFilesAndFoldersAreSkipped) {
  TempDir t;
  const std::string root = t / "r";
  write_file(root + "/ok.txt", "ok\n");
  write_file(root + "/secret.txt", "secret\n");
  write_file(root + "/locked/inner.txt", "inner\n");
  chmod((root + "/secret.txt").c_str(), 0);
  chmod((root + "/locked").c_str(), 0);
  const int rc = test::run_unprivileged([&] {
    DiscoveryOptions o;  // reused below
    o.inputs = {root};
    const Discovery d = discover(o);
    if (names(d) != std::vector<std::string>{root + "/ok.txt"}) return 1;
    const std::map<std::string, std::string> want = {{root + "/secret.txt", skip_reason::kUnreadable},
                                                     {root + "/locked", skip_reason::kUnreadable}};
    if (skips(d) != want) return 2;
    // An unreadable input directory: one skip, not a second "no files" one.
    o.inputs = {root + "/locked"};
    const Discovery locked = discover(o);
    if (!locked.documents.empty() || locked.skipped.size() != 1 ||
        locked.skipped[0].reason != skip_reason::kUnreadable)
      return 4;
    // read_text sees the same when a file becomes unreadable after discovery.
    ReadResult r = read_text(SourceFile{"s", root + "/secret.txt", 7});
    if (r.ok || r.reason != skip_reason::kUnreadable || r.detail.find("Permission denied") == std::string::npos)
      return 3;
    return 0;
  });
  EXPECT_EQ(rc, 0) << "1: wrong documents, 2: wrong skips, 3: read_text did not report unreadable, "
                       "4: an unreadable input directory was not reported once";
}

// Issue 13: an output inside the input tree must not become a document, or a rerun
// would see another document list (and --overwrite would score the output).
TEST(Discovery, TheRunsOwnOutputIsNeverADocument) {
  TempDir t;
  const std::string root = t / "selfin";
  write_file(root + "/a.txt", "alpha\n");
  write_file(root + "/out.h5", "HDF5 stand-in\n");
  write_file(root + "/out.h5.lock", "ringscan result lock\n");
  write_file(root + "/out.h5.tmp", "half a file\n");
  write_file(root + "/out.h5.parts/run.json", "{}\n");
  write_file(root + "/out.h5.parts/part-a0000-r00000-000000.bin", "part\n");
  write_file(root + "/sub/out.h5", "another folder: a document\n");
  write_file(root + "/out.h5.txt", "another name: a document\n");
  ASSERT_EQ(symlink(root.c_str(), (t / "via_link").c_str()), 0);
  DiscoveryOptions o;
  o.inputs = {root};
  o.own_output = root + "/out.h5";
  const std::vector<std::string> expected = {root + "/a.txt", root + "/out.h5.txt", root + "/sub/out.h5"};
  EXPECT_EQ(names(discover(o)), expected);
  EXPECT_TRUE(discover(o).skipped.empty());
  for (const DocumentMode mode : {DocumentMode::File, DocumentMode::Codebase}) {
    // The output named through a link (and relative to another spelling) is the same file.
    o.mode = mode;
    o.own_output = t / "via_link/out.h5";
    const Discovery d = discover(o);
    std::vector<std::string> files;
    for (const Document& doc : d.documents)
      for (const SourceFile& f : doc.files) files.push_back(f.path);
    EXPECT_EQ(files.size(), 3u) << testing::PrintToString(files);
  }
  o.mode = DocumentMode::File;
  // Without own_output (another run's folder), they are ordinary files.
  o.own_output = "";
  EXPECT_EQ(discover(o).documents.size(), 8u);
  // Named directly, it is an error, not a silent skip.
  o.own_output = root + "/out.h5";
  for (const std::string& input : {root + "/out.h5", root + "/out.h5.parts"}) {
    o.inputs = {input};
    try {
      discover(o);
      ADD_FAILURE() << "accepted " << input;
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()), "input " + input + " is this run's own output (--out " + root +
                                           "/out.h5) or a file ringscan keeps next to it; expected documents");
    }
  }
}

}  // namespace
}  // namespace ringscan::io
