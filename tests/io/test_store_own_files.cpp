// The result store deletes only what it wrote, and finds damage before computing
// (project issue 13, "Lost or damaged files"), under mpirun with 1-3 ranks:
// - files of the user's in `<out>.parts/` (also a subfolder, also with --overwrite), a
//   `<out>.lock` or `<out>.tmp` of the user's are never deleted or overwritten;
// - `<out>` is replaced (--overwrite) only when it is a ringscan result or a link to
//   one: never a device, a FIFO, or a file of another program;
// - a damaged part is named when the store opens, with the way out (--repair, or the
//   file to delete); repair drops it and its documents are computed again.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "io/fs_util.h"
#include "io/result_store.h"
#include "store_mpi_util.h"
#include "util/error.h"

namespace ringscan::io {
namespace {

using namespace test::mpi;

constexpr uint64_t kDocs = 6;

// An unfinished run: rank 0 alone computed documents [0, done), two per part file.
void unfinished_run(const std::string& out, uint64_t done) {
  if (world_rank() == 0) {
    auto s = open_store(out, kDocs, test::fixture_identity(), false, MPI_COMM_SELF);
    add_owned(*s, 0, done, [](uint64_t) { return 0; }, 0);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

std::unique_ptr<ResultStore> open_repairing(const std::string& out) {
  return ResultStore::open(out, test::fixture_identity(), false, test::fixture_names(kDocs), MPI_COMM_WORLD, {},
                           Json::object(), /*repair=*/true);
}

void finish(ResultStore& s) {
  add_owned(s, 0, kDocs, [](uint64_t i) { return int(i) % world_size(); }, world_rank());
  finalize(s);
}

std::string reference(const SharedDir& dir) {
  const std::string ref = dir / "ref.h5";
  auto s = open_store(ref, kDocs);
  finish(*s);
  return ref;
}

// Every name in a folder with its bytes (rank 0; "" elsewhere), to show nothing changed.
std::string snapshot(const std::string& dir) {
  if (world_rank() != 0) return "";
  std::string s;
  for (const std::string& n : list_dir(dir))
    s += n + "=" + (is_directory(dir + "/" + n) ? "<dir>" : read_whole_file(dir + "/" + n)) + "\n";
  return s;
}

TEST(StoreOwnFiles, DamagedPartIsNamedAtStartAndRepairComputesItsDocumentsAgain) {
  SharedDir dir;
  const std::string ref = reference(dir), out = dir / "dmg.h5";
  unfinished_run(out, 4);  // part 0: documents 0-1, part 1: 2-3
  const std::string part0 = out + ".parts/part-a0000-r00000-000000.bin";
  if (world_rank() == 0) {
    // One byte of a record (not of the header or index): before, only the end of the
    // run, after computing every missing document, found it, with no way out.
    std::string bytes = read_whole_file(part0);
    bytes[bytes.size() - 5] ^= 0x55;
    test::write_file(part0, bytes);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  const std::string msg = agreed_error([&] { open_store(out, kDocs); });
  EXPECT_EQ(msg, "part file " + part0 + " is damaged: the record of document 1 fails its checksum; rerun with --repair "
                 "to drop the damaged part file and compute their documents again, or delete " + part0 + " yourself");
  if (world_rank() == 0) {
    EXPECT_TRUE(path_exists(part0));  // refusing changes nothing
  }

  auto s = open_repairing(out);
  EXPECT_TRUE(contains(s->summary(), "2 of 6 documents already done")) << s->summary();
  EXPECT_TRUE(contains(s->summary(), "1 damaged part file dropped (--repair): their documents are computed again"))
      << s->summary();
  EXPECT_EQ(s->completed(), (Set{2, 3}));
  EXPECT_FALSE(path_exists(part0));
  finish(*s);
  if (world_rank() == 0) {
    EXPECT_TRUE(read_whole_file(ref) == read_whole_file(out)) << "the repaired run's file differs";
  }
}

TEST(StoreOwnFiles, ADocumentTwiceInOneAttemptIsDamageThatRepairDrops) {
  SharedDir dir;
  const std::string ref = reference(dir), out = dir / "twice.h5";
  unfinished_run(out, 4);
  const std::string part1 = out + ".parts/part-a0000-r00000-000001.bin";
  const std::string copy = out + ".parts/part-a0000-r00001-000000.bin";  // as if rank 1 wrote 2-3 too
  if (world_rank() == 0) test::write_file(copy, read_whole_file(part1));
  MPI_Barrier(MPI_COMM_WORLD);
  const std::string msg = agreed_error([&] { open_store(out, kDocs); });
  EXPECT_TRUE(contains(msg, "part file " + copy + " is damaged: its document 2 is also in part-a0000-r00000-000001.bin, "
                            "of the same attempt; rerun with --repair")) << msg;
  auto s = open_repairing(out);
  EXPECT_EQ(s->completed(), (Set{0, 1, 2, 3}));
  EXPECT_FALSE(path_exists(copy));
  finish(*s);
  if (world_rank() == 0) {
    EXPECT_TRUE(read_whole_file(ref) == read_whole_file(out));
  }
}

TEST(StoreOwnFiles, FilesOfTheUsersInThePartsFolderAreNeverDeleted) {
  SharedDir dir;
  const std::string out = dir / "mine.h5", parts = out + ".parts";
  // A folder ringscan never made: before, its files were deleted at start (and with a
  // subfolder, the run failed after deleting them).
  if (world_rank() == 0) {
    test::write_file(parts + "/notes.txt", "my notes\n");
    test::write_file(parts + "/sub/data.txt", "more\n");
  }
  MPI_Barrier(MPI_COMM_WORLD);
  const std::string before = snapshot(parts);
  for (bool overwrite : {false, true}) {
    const std::string msg = agreed_error([&] { open_store(out, kDocs, test::fixture_identity(), overwrite); });
    EXPECT_EQ(msg, parts + " is not a folder of a ringscan run (it holds notes.txt, which ringscan did not write); "
                           "ringscan deletes only what it wrote, so move it away or choose another output path");
    EXPECT_EQ(snapshot(parts), before);
  }
  if (world_rank() == 0) {
    remove_file(parts + "/notes.txt");  // the subfolder alone
  }
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_TRUE(contains(agreed_error([&] { open_store(out, kDocs); }), "it holds sub, which ringscan did not write"));
  if (world_rank() == 0) {
    EXPECT_EQ(read_whole_file(parts + "/sub/data.txt"), "more\n");
  }
  MPI_Barrier(MPI_COMM_WORLD);

  // A run.json of another program: not ringscan's, also with --overwrite.
  const std::string out2 = dir / "theirs.h5";
  if (world_rank() == 0) test::write_file(out2 + ".parts/run.json", "{\"format\": \"something else\"}\n");
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_TRUE(contains(agreed_error([&] { open_store(out2, kDocs, test::fixture_identity(), true); }),
                       "its run.json is not ringscan's"));
  if (world_rank() == 0) {
    EXPECT_TRUE(path_exists(out2 + ".parts/run.json"));
  }

  // ringscan's own folder of an unfinished run, with a file of the user's put in it.
  const std::string out3 = dir / "ours.h5";
  unfinished_run(out3, 2);
  if (world_rank() == 0) test::write_file(out3 + ".parts/keep.me", "x");
  MPI_Barrier(MPI_COMM_WORLD);
  const std::string ours = snapshot(out3 + ".parts");
  EXPECT_TRUE(contains(agreed_error([&] { open_store(out3, kDocs); }), "it holds keep.me, which ringscan did not write"));
  EXPECT_EQ(snapshot(out3 + ".parts"), ours);
}

TEST(StoreOwnFiles, ALockOrTmpFileOfTheUsersIsNeverTouched) {
  SharedDir dir;
  const std::string out = dir / "l.h5";
  if (world_rank() == 0) test::write_file(out + ".lock", "my lock\n");
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_TRUE(contains(agreed_error([&] { open_store(out, kDocs); }), out + ".lock exists and was not written by ringscan"));
  if (world_rank() == 0) {
    EXPECT_EQ(read_whole_file(out + ".lock"), "my lock\n");
    remove_file(out + ".lock");
    // Before, `<out>.tmp` was where the final file was written: silently overwritten.
    test::write_file(out + ".tmp", "my draft\n");
  }
  MPI_Barrier(MPI_COMM_WORLD);
  auto s = open_store(out, kDocs);
  finish(*s);
  EXPECT_TRUE(path_exists(out));
  EXPECT_FALSE(path_exists(out + ".lock"));
  if (world_rank() == 0) {
    EXPECT_EQ(read_whole_file(out + ".tmp"), "my draft\n");
  }
}

TEST(StoreOwnFiles, OnlyARingscanResultOrALinkToOneIsReplaced) {
  SharedDir dir;
  // A character device (a copy of /dev/null, made as the probe did) and a FIFO: with
  // --overwrite the device used to become a regular file.
  const std::string dev = dir / "null", fifo = dir / "fifo.h5", link = dir / "link.h5";
  int made_dev = 0;
  if (world_rank() == 0) {
    made_dev = mknod(dev.c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0;
    EXPECT_EQ(mkfifo(fifo.c_str(), 0644), 0);
    EXPECT_EQ(symlink(fifo.c_str(), link.c_str()), 0);
  }
  MPI_Bcast(&made_dev, 1, MPI_INT, 0, MPI_COMM_WORLD);
  for (bool overwrite : {false, true}) {
    if (made_dev) {
      const std::string msg = agreed_error([&] { open_store(dev, kDocs, test::fixture_identity(), overwrite); });
      EXPECT_EQ(msg, "output " + dev + " is a character device, not a regular file; expected the path of an .h5 file");
    }
    EXPECT_EQ(agreed_error([&] { open_store(fifo, kDocs, test::fixture_identity(), overwrite); }),
              "output " + fifo + " is a FIFO, not a regular file; expected the path of an .h5 file");
    EXPECT_TRUE(contains(agreed_error([&] { open_store(link, kDocs, test::fixture_identity(), overwrite); }),
                         "is a FIFO, not a regular file"));
  }
  if (world_rank() == 0) {
    struct stat st;
    if (made_dev) {
      EXPECT_TRUE(stat(dev.c_str(), &st) == 0 && S_ISCHR(st.st_mode));
    }
    EXPECT_TRUE(stat(fifo.c_str(), &st) == 0 && S_ISFIFO(st.st_mode));
    EXPECT_FALSE(path_exists(dev + ".lock"));  // nothing was created next to it either
    EXPECT_FALSE(path_exists(dev + ".parts"));
  }
  if (!made_dev && world_rank() == 0)
    std::printf("note: mknod is not permitted here; the character-device case ran as a FIFO only\n");

  // A link to a ringscan result of another run is replaced with --overwrite.
  const std::string ref = reference(dir), link2 = dir / "link2.h5";
  if (world_rank() == 0) {
    EXPECT_EQ(symlink(ref.c_str(), link2.c_str()), 0);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  Json other = test::fixture_identity();
  other["tokenizer_sha"] = "other";
  EXPECT_TRUE(contains(agreed_error([&] { open_store(link2, kDocs, other); }), "--overwrite"));
  {
    auto s = open_store(link2, kDocs, other, true);
    EXPECT_EQ(s->n_completed(), 0u);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (world_rank() == 0) {
    EXPECT_TRUE(path_exists(ref));  // the link went, not its target
  }
}

}  // namespace
}  // namespace ringscan::io
