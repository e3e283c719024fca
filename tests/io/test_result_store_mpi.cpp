// The result store under mpirun (1, 2 and 3 ranks): round trip through the final HDF5
// file read back by h5py, resume after abandoned attempts (bytes equal to an
// uninterrupted run), no-op reruns, identity and path errors agreed on every rank.
// Kills at arbitrary moments are in test_store_kill.cpp; the user's files, damaged parts
// and --repair in test_store_own_files.cpp.
#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>

#include <functional>
#include <limits>
#include <memory>
#include <set>

#include "io/fs_util.h"
#include "io/result_store.h"
#include "io_test_util.h"
#include "store_mpi_util.h"
#include "store_checks.h"
#include "store_fixture.h"
#include "util/error.h"

namespace ringscan::io {
namespace {

using test::fixture_result;

using namespace test::mpi;

void uninterrupted_run(const std::string& out, uint64_t n) {
  auto s = open_store(out, n);
  const int P = world_size();
  add_owned(*s, 0, n, [P](uint64_t i) { return int(i % uint64_t(P)); }, world_rank());
  finalize(*s);
}

constexpr uint64_t kDocs = 13;  // covers every kind of fixture row

TEST(ResultStore, RoundTripReadsBackWithH5pyAndH5dump) {
  SharedDir dir;
  const std::string out = dir / "scores.h5";
  uninterrupted_run(out, kDocs);
  EXPECT_TRUE(path_exists(out));
  EXPECT_FALSE(path_exists(out + ".parts"));
  EXPECT_FALSE(path_exists(out + ".tmp"));
  if (world_rank() == 0) {
    test::expect_dump_matches_fixture(test::h5_to_json(out), kDocs, world_size());
    std::string listing;
    EXPECT_EQ(test::run_command("h5dump -H '" + out + "'", &listing), 0) << listing;
    EXPECT_TRUE(contains(listing, "format_version")) << listing;
    EXPECT_TRUE(contains(listing, "/tokens/ids") || contains(listing, "DATASET \"ids\"")) << listing;
  }
}

TEST(ResultStore, ZeroDocumentsAndMoreRanksThanDocuments) {
  SharedDir dir;
  for (uint64_t n : {uint64_t(0), uint64_t(1), uint64_t(2)}) {
    std::string name = "n";  // built step by step: GCC 12 warns falsely on "n" + to_string()
    name += std::to_string(n);
    const std::string out = dir / (name + ".h5");
    uninterrupted_run(out, n);
    if (world_rank() == 0) test::expect_dump_matches_fixture(test::h5_to_json(out), n, world_size());
  }
}

TEST(ResultStore, ResumeAfterAbandonedAttemptsEqualsUninterruptedRun) {
  SharedDir dir;
  const std::string ref = dir / "ref.h5";
  const std::string out = dir / "resumed.h5";
  uninterrupted_run(ref, kDocs);
  const int rank = world_rank(), P = world_size();

  // Attempt 1 runs on rank 0 alone (another rank count): documents 0-3 are flushed,
  // 4 and 5 are added but never flushed, then the process "dies" (store dropped).
  if (rank == 0) {
    auto s = open_store(out, kDocs, test::fixture_identity(), false, MPI_COMM_SELF);
    EXPECT_EQ(s->n_completed(), 0u);
    add_owned(*s, 0, 4, [](uint64_t) { return 0; }, 0);
    s->add(fixture_result(4));
    s->add(fixture_result(5));
    // Debris of writes a crash interrupted: a half-written part and final file. A file
    // of the user's next to the output is none of ringscan's business.
    test::write_file(out + ".parts/part-a0000-r00000-000099.bin.tmp", "half a part");
    test::write_file(out + ".parts/result.h5.tmp", "half a final file");
    test::write_file(out + ".tmp", "the user's own file");
  }
  MPI_Barrier(MPI_COMM_WORLD);

  // Attempt 2, all ranks, documents given to ranks the other way round: sees 0-3 done.
  {
    auto s = open_store(out, kDocs);
    EXPECT_EQ(s->completed(), (Set{0, 1, 2, 3}));
    EXPECT_TRUE(contains(s->summary(), "4 of 13 documents already done")) << s->summary();
    EXPECT_FALSE(path_exists(out + ".parts/result.h5.tmp"));
    EXPECT_FALSE(path_exists(out + ".parts/part-a0000-r00000-000099.bin.tmp"));
    if (rank == 0) {
      EXPECT_EQ(read_whole_file(out + ".tmp"), "the user's own file");
    }
    add_owned(*s, 0, 9, [P](uint64_t i) { return P - 1 - int(i % uint64_t(P)); }, rank);
    s->add(fixture_result(9 + uint64_t(rank)));  // never flushed: lost with this attempt
  }
  MPI_Barrier(MPI_COMM_WORLD);

  // Attempt 3 finishes. Document 7 failed (fixture): it is tried again, not kept.
  auto s = open_store(out, kDocs);
  const Set first9_but_failed = {0, 1, 2, 3, 4, 5, 6, 8};
  EXPECT_EQ(s->completed(), first9_but_failed);
  EXPECT_TRUE(contains(s->summary(), "1 failed before (tried again)")) << s->summary();
  add_owned(*s, 0, kDocs, [](uint64_t i) { return int(i * 7 % 3) % world_size(); }, rank, 1);
  finalize(*s);
  EXPECT_FALSE(path_exists(out + ".parts"));
  if (rank == 0) {
    const Json a = test::h5_to_json(ref), b = test::h5_to_json(out);
    EXPECT_EQ(a, b) << "datasets or attributes differ";
    EXPECT_TRUE(read_whole_file(ref) == read_whole_file(out)) << "the resumed file's bytes differ from the reference";
  }
}

TEST(ResultStore, RerunOfACompleteRunIsANoOp) {
  SharedDir dir;
  const std::string out = dir / "done.h5";
  constexpr uint64_t kDocs = 7;  // none failed (a failed document would be tried again)
  uninterrupted_run(out, kDocs);
  std::string before = world_rank() == 0 ? read_whole_file(out) : "";
  // A crash between renaming the final file and removing the parts leaves stale parts
  // (run.json goes last).
  if (world_rank() == 0) {
    test::write_file(out + ".parts/part-a0007-r00000-000000.bin", "stale");
    test::write_file(out + ".parts/run.json", R"({"format": "ringscan result parts", "version": 2})");
  }
  MPI_Barrier(MPI_COMM_WORLD);
  auto s = open_store(out, kDocs);
  EXPECT_TRUE(s->already_complete());
  EXPECT_TRUE(contains(s->summary(), "already complete")) << s->summary();
  EXPECT_EQ(s->n_completed(), kDocs);
  EXPECT_FALSE(path_exists(out + ".parts"));
  EXPECT_THROW(s->add(fixture_result(0)), Error);
  finalize(*s);
  if (world_rank() == 0) {
    EXPECT_TRUE(read_whole_file(out) == before);
  }
  // --overwrite does not throw away a complete run of the same identity either.
  EXPECT_TRUE(open_store(out, kDocs, test::fixture_identity(), true)->already_complete());
}

// Documents whose content digest changed, and failed ones, are computed again; the
// other results are kept, both from a complete output (reopened) and from unfinished
// parts (the later attempt's record supersedes); the file then equals an uninterrupted
// run over the new contents.
TEST(ResultStore, ChangedAndFailedDocumentsAreComputedAgainTheRestKept) {
  SharedDir dir;
  const int rank = world_rank(), P = world_size();
  std::vector<std::string> v0 = test::fixture_digests(kDocs), v1 = v0;
  v1[2] = test::fixture_digest(2, 1);  // document 2 edited
  auto open_with = [&](const std::string& out, const std::vector<std::string>& digests) {
    return ResultStore::open(out, test::fixture_identity(), false, test::fixture_names(kDocs), MPI_COMM_WORLD, digests);
  };
  auto run_all = [&](const std::string& out, const std::vector<std::string>& digests) {
    auto s = open_with(out, digests);
    add_owned(*s, 0, kDocs, [P](uint64_t i) { return int(i % uint64_t(P)); }, rank);
    finalize(*s);
    return s->status_counts();
  };
  const std::string ref = dir / "ref.h5", out = dir / "out.h5";
  run_all(ref, v1);
  const ResultStore::StatusCounts n = run_all(out, v0);
  EXPECT_EQ(n.ok, 11u);  // fixture: 5 skipped, 7 failed
  EXPECT_EQ(n.skipped, 1u);
  EXPECT_EQ(n.failed, 1u);

  // A complete output: reopened for documents 2 (changed) and 7 (failed).
  {
    auto s = open_with(out, v1);
    EXPECT_FALSE(s->already_complete());
    EXPECT_TRUE(contains(s->summary(), "reopening " + out + ": 11 of 13 documents kept; 1 changed since (computed again); "
                                       "1 failed before (tried again)")) << s->summary();
    Set kept;
    for (uint64_t i = 0; i < kDocs; ++i)
      if (i != 2 && i != 7) kept.insert(i);
    EXPECT_EQ(s->completed(), kept);
    EXPECT_FALSE(path_exists(out));  // its results are in the parts now
    // A result computed from other content than the run's is refused.
    DocumentResult stale = fixture_result(2);
    stale.content_sha256 = v0[2];
    EXPECT_THROW(s->add(stale), Error);
    add_owned(*s, 0, kDocs, [P](uint64_t i) { return int(i % uint64_t(P)); }, rank);
    finalize(*s);
  }
  if (rank == 0) {
    EXPECT_TRUE(read_whole_file(ref) == read_whole_file(out)) << "the reopened file differs";
  }
  MPI_Barrier(MPI_COMM_WORLD);
  // Failed documents are tried on every rerun: document 7 failed again, so the same
  // contents still reopen the output.
  EXPECT_FALSE(open_with(out, v1)->already_complete());
  MPI_Barrier(MPI_COMM_WORLD);

  // Unfinished parts: every document done in attempt 0, then document 2 changes back.
  const std::string ref0 = dir / "ref0.h5", out2 = dir / "parts.h5";
  run_all(ref0, v0);
  {
    auto s = open_with(out2, v1);
    add_owned(*s, 0, kDocs, [P](uint64_t i) { return int(i % uint64_t(P)); }, rank);
  }  // dies before finalize
  MPI_Barrier(MPI_COMM_WORLD);
  {
    auto s = open_with(out2, v0);
    EXPECT_TRUE(contains(s->summary(), "11 of 13 documents already done")) << s->summary();
    EXPECT_TRUE(contains(s->summary(), "1 changed since (computed again); 1 failed before (tried again)")) << s->summary();
    EXPECT_FALSE(s->is_completed(2));
    EXPECT_FALSE(s->is_completed(7));
    add_owned(*s, 0, kDocs, [P](uint64_t i) { return P - 1 - int(i % uint64_t(P)); }, rank);
    finalize(*s);
  }
  if (rank == 0) {
    EXPECT_TRUE(read_whole_file(ref0) == read_whole_file(out2)) << "the resumed file differs";
  }
}

// NaN and infinity become JSON null: two runs that differ only there would look alike.
TEST(ResultStore, NonFiniteNumbersInTheIdentityAreRefused) {
  SharedDir dir;
  Json id = test::fixture_identity();
  id["options"]["temperature"] = std::numeric_limits<double>::quiet_NaN();
  std::string msg = agreed_error([&] { open_store(dir / "nan.h5", 3, id); });
  EXPECT_TRUE(contains(msg, "non-finite number at 'options'.temperature")) << msg;
  EXPECT_FALSE(path_exists(dir / "nan.h5.parts"));
}

TEST(ResultStore, DifferentRunIsAnErrorUnlessOverwrite) {
  SharedDir dir;
  const std::string out = dir / "x.h5";
  uninterrupted_run(out, kDocs);
  Json other = test::fixture_identity();
  other["tokenizer_sha"] = "changed";
  std::string msg = agreed_error([&] { open_store(out, kDocs, other); });
  EXPECT_TRUE(contains(msg, "already exists with a different model or options")) << msg;
  EXPECT_TRUE(contains(msg, "'tokenizer_sha'")) << msg;
  EXPECT_TRUE(contains(msg, "--overwrite")) << msg;
  msg = agreed_error([&] { open_store(out, kDocs + 1); });
  EXPECT_TRUE(contains(msg, "different document list")) << msg;

  // With overwrite: the old file goes, the new run starts from nothing.
  {
    auto s = open_store(out, kDocs, other, true);
    EXPECT_FALSE(s->already_complete());
    EXPECT_EQ(s->n_completed(), 0u);
    EXPECT_FALSE(path_exists(out));
    add_owned(*s, 0, 5, [](uint64_t) { return 0; }, world_rank());  // rank 0 does 0-4, then "dies"
  }
  MPI_Barrier(MPI_COMM_WORLD);
  // Unfinished parts of another identity: an error without overwrite ...
  msg = agreed_error([&] { open_store(out, kDocs); });
  EXPECT_TRUE(contains(msg, "unfinished results in " + out + ".parts")) << msg;
  EXPECT_TRUE(contains(msg, "'tokenizer_sha'")) << msg;
  // ... while the same command with --overwrite resumes them.
  {
    auto s = open_store(out, kDocs, other, true);
    EXPECT_EQ(s->completed(), (Set{0, 1, 2, 3, 4}));
  }
  MPI_Barrier(MPI_COMM_WORLD);
  // And overwrite with yet another identity discards them.
  Json third = other;
  third["options"]["max_tokens"] = 8;
  EXPECT_EQ(open_store(out, kDocs, third, true)->n_completed(), 0u);
}

TEST(ResultStore, OutputPathErrors) {
  SharedDir dir;
  std::string msg = agreed_error([&] { open_store(dir / "no/such/dir/x.h5", 3); });
  EXPECT_EQ(msg, "the folder " + dir / "no/such/dir" + " of output " + dir / "no/such/dir/x.h5" +
                     " does not exist; create it first");
  if (world_rank() == 0) test::make_dirs(dir / "a_folder.h5");
  MPI_Barrier(MPI_COMM_WORLD);
  msg = agreed_error([&] { open_store(dir / "a_folder.h5", 3); });
  EXPECT_TRUE(contains(msg, "is a folder")) << msg;
  if (world_rank() == 0) test::write_file(dir / "notes.h5", "not hdf5\n");
  MPI_Barrier(MPI_COMM_WORLD);
  // Not a ringscan result: never replaced, also with --overwrite.
  for (bool overwrite : {false, true}) {
    msg = agreed_error([&] { open_store(dir / "notes.h5", 3, test::fixture_identity(), overwrite); });
    EXPECT_EQ(msg, "output " + dir / "notes.h5" +
                       " exists and is not a ringscan result file; ringscan replaces only its own results, also with "
                       "--overwrite: move it away or choose another output path");
  }
  if (world_rank() == 0) {
    EXPECT_EQ(read_whole_file(dir / "notes.h5"), "not hdf5\n");
  }
  msg = agreed_error([&] { open_store("", 3); });
  EXPECT_TRUE(contains(msg, "no output path")) << msg;
}

TEST(ResultStore, FinalizeNeedsEveryDocument) {
  SharedDir dir;
  const std::string out = dir / "partial.h5";
  {
    auto s = open_store(out, 5);
    if (world_rank() == 0) {
      s->add(fixture_result(0));
      s->add(fixture_result(2));
    }
    const std::string msg = agreed_error([&] { finalize(*s); });
    EXPECT_TRUE(contains(msg, "3 of 5 documents have no result (first: document 1, docs/doc_001.txt)")) << msg;
  }
  MPI_Barrier(MPI_COMM_WORLD);
  // What was added is kept (finalize flushed it) and the run can still be finished.
  auto s = open_store(out, 5);
  EXPECT_EQ(s->completed(), (Set{0, 2}));
  add_owned(*s, 0, 5, [](uint64_t i) { return int(i) % world_size(); }, world_rank());
  finalize(*s);
  if (world_rank() == 0) test::expect_dump_matches_fixture(test::h5_to_json(out), 5, world_size());
}

TEST(ResultStore, AddRejectsInvalidResults) {
  SharedDir dir;
  auto s = open_store(dir / "v.h5", 20);
  auto rejects = [&](DocumentResult r, const std::string& expected) {
    try {
      s->add(std::move(r));
      ADD_FAILURE() << "accepted a result that should fail with: " << expected;
    } catch (const Error& e) {
      EXPECT_TRUE(contains(e.what(), expected)) << e.what();
    }
  };
  DocumentResult r = fixture_result(0);
  r.index = 20;
  rejects(r, "the run has only 20 documents");
  r = fixture_result(0);
  r.status = "truncated";
  rejects(r, "expected ok, skipped or failed");
  r = fixture_result(0);
  r.error = "oops";
  rejects(r, "has status ok and an error text");
  r = fixture_result(5);
  r.error = "";
  rejects(r, "has status skipped but no reason");
  r = fixture_result(1);
  r.logprob.pop_back();
  rejects(r, "log-probs for");
  r = fixture_result(2);
  r.files[1].token_end = r.token_ids.size() + 1;
  rejects(r, "outside the document's");
  r = fixture_result(0);
  r.n_scored = r.token_ids.size() + 1;
  rejects(r, "n_scored");
  r = fixture_result(0);
  r.path = "other.txt";
  rejects(r, "but the document list has docs/doc_000.txt");
  r = fixture_result(0);
  r.error = "";
  r.files = {FileResult{"bad\xff", 0, 1, 0, 0, 0}};
  rejects(r, "is not valid UTF-8");
  s->add(fixture_result(0));
  rejects(fixture_result(0), "was already added");
  r = fixture_result(2);
  r.embedding_mean.push_back(1.0f);  // 6 after document 0's 5
  rejects(r, "mean embedding of dimension 6 but earlier documents have 5");
  r = fixture_result(3);
  r.path = "";  // empty: taken from the document list
  EXPECT_NO_THROW(s->add(r));
  Json bad_extra = {{"k", "\xff"}};
  r = fixture_result(4);
  r.extra = bad_extra;
  rejects(r, "extra holds a string that is not valid UTF-8");
}

TEST(ResultStore, EmbeddingDimensionsMustAgreeAcrossRanks) {
  if (world_size() < 2) GTEST_SKIP() << "needs 2 ranks; runs under io_store_mpi_np2 and _np3 (one rank: see AddRejectsInvalidResults)";
  SharedDir dir;
  auto s = open_store(dir / "d.h5", 2);
  if (world_rank() < 2) {
    DocumentResult r = fixture_result(uint64_t(world_rank()));
    r.embedding_mean.assign(world_rank() == 0 ? 4 : 3, 1.0f);
    s->add(r);
  }
  const std::string msg = agreed_error([&] { finalize(*s); });
  EXPECT_TRUE(contains(msg, "has a mean embedding of dimension 3 but others have 4")) << msg;
}

TEST(ResultStore, ReservedAttributeNamesAreRejected) {
  SharedDir dir;
  auto s = open_store(dir / "r.h5", 1);
  if (world_rank() == 0) s->add(fixture_result(0));
  Json a = attributes();
  a["format_version"] = 2;
  const std::string msg = agreed_error([&] { s->finalize(a, {}); });
  EXPECT_TRUE(contains(msg, "'format_version' is written by the result store itself")) << msg;
}

}  // namespace
}  // namespace ringscan::io
