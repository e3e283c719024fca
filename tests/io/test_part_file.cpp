// Part files: every field survives encode/decode bit for bit; damage is detected.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "io/fs_util.h"
#include "io/part_file.h"
#include "io_test_util.h"
#include "store_fixture.h"
#include "util/error.h"

namespace ringscan::io {
namespace {

void expect_same(const DocumentResult& a, const DocumentResult& b) {
  EXPECT_EQ(a.index, b.index);
  EXPECT_EQ(a.path, b.path);
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.error, b.error);
  EXPECT_EQ(a.truncated, b.truncated);
  EXPECT_EQ(a.token_ids, b.token_ids);
  ASSERT_EQ(a.logprob.size(), b.logprob.size());
  EXPECT_EQ(0, std::memcmp(a.logprob.data(), b.logprob.data(), a.logprob.size() * sizeof(float)));  // NaN too
  EXPECT_EQ(a.n_scored, b.n_scored);
  EXPECT_EQ(0, std::memcmp(&a.nll_sum, &b.nll_sum, sizeof(double)));
  EXPECT_EQ(0, std::memcmp(&a.nll_mean, &b.nll_mean, sizeof(double)));
  EXPECT_EQ(0, std::memcmp(&a.perplexity, &b.perplexity, sizeof(double)));
  ASSERT_EQ(a.files.size(), b.files.size());
  for (size_t k = 0; k < a.files.size(); ++k) {
    EXPECT_EQ(a.files[k].path, b.files[k].path);
    EXPECT_EQ(a.files[k].token_begin, b.files[k].token_begin);
    EXPECT_EQ(a.files[k].token_end, b.files[k].token_end);
    EXPECT_EQ(a.files[k].n_scored, b.files[k].n_scored);
    EXPECT_EQ(0, std::memcmp(&a.files[k].nll_sum, &b.files[k].nll_sum, sizeof(double)));
    EXPECT_EQ(0, std::memcmp(&a.files[k].perplexity, &b.files[k].perplexity, sizeof(double)));
  }
  EXPECT_EQ(a.embedding_mean, b.embedding_mean);
  EXPECT_EQ(a.embedding_last, b.embedding_last);
  ASSERT_EQ(a.skipped_files.size(), b.skipped_files.size());
  for (size_t k = 0; k < a.skipped_files.size(); ++k) {
    EXPECT_EQ(a.skipped_files[k].path, b.skipped_files[k].path);
    EXPECT_EQ(a.skipped_files[k].reason, b.skipped_files[k].reason);
    EXPECT_EQ(a.skipped_files[k].detail, b.skipped_files[k].detail);
  }
  EXPECT_EQ(a.extra, b.extra);
  EXPECT_EQ(a.content_sha256, b.content_sha256);
}

TEST(PartFile, EveryFieldRoundTrips) {
  test::TempDir t;
  std::vector<DocumentResult> in;
  for (uint64_t i = 0; i < 13; ++i) {
    in.push_back(test::fixture_result(i));
    if (i % 2) in.back().content_sha256 = test::fixture_digest(i, 0);  // others: not known ("")
  }
  const std::string path = t / "part.bin";
  write_file_atomic(path, encode_part(in));
  EXPECT_FALSE(path_exists(path + ".tmp"));
  const std::vector<PartEntry> idx = read_part_index(path);
  ASSERT_EQ(idx.size(), in.size());
  for (size_t k = 0; k < in.size(); ++k) {
    EXPECT_EQ(idx[k].document, in[k].index);
    EXPECT_EQ(idx[k].failed, in[k].status == doc_status::kFailed);  // what resuming reads from the index
    EXPECT_EQ(idx[k].content_sha256, in[k].content_sha256);
    SCOPED_TRACE("document " + std::to_string(k));
    expect_same(in[k], read_part_record(path, idx[k]));
  }
}

TEST(PartFile, DamageIsDetected) {
  test::TempDir t;
  const std::string good = encode_part({test::fixture_result(1), test::fixture_result(2)});
  const std::string path = t / "p.bin";
  auto expect_damaged = [&](const std::string& bytes, const std::string& what) {
    test::write_file(path, bytes);
    try {
      for (const PartEntry& e : read_part_index(path)) read_part_record(path, e);
      ADD_FAILURE() << "damage not detected: " << what;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("is damaged"), std::string::npos) << e.what();
    }
  };
  expect_damaged(good.substr(0, good.size() - 1), "truncated");
  expect_damaged(good.substr(0, 20), "shorter than the header");
  std::string flipped = good;
  flipped[good.size() - 10] ^= 0x01;
  expect_damaged(flipped, "a flipped record byte");
  flipped = good;
  flipped[40] ^= 0x01;
  expect_damaged(flipped, "a flipped index byte");
  flipped = good;
  flipped[0] = 'X';
  expect_damaged(flipped, "wrong magic");
  EXPECT_THROW(decode_result(std::string_view(good).substr(32 + 2 * 72, 10), "slice"), Error);  // header, 2 entries
  DocumentResult bad_digest = test::fixture_result(1);
  bad_digest.content_sha256 = "not hex";
  EXPECT_THROW(encode_part({bad_digest}), Error);

  // Sizes near 2^64 must not wrap around to pass the size checks (and then ask for
  // exabytes): a header whose payload size is 2^64 - 64 + the real size, with a valid
  // index checksum, and an index entry whose length wraps past the end.
  auto set_u64 = [](std::string& bytes, size_t at, uint64_t v) { std::memcpy(bytes.data() + at, &v, 8); };
  auto get_u64 = [](const std::string& bytes, size_t at) {
    uint64_t v;
    std::memcpy(&v, bytes.data() + at, 8);
    return v;
  };
  std::string wrapped = good;
  set_u64(wrapped, 16, get_u64(good, 16) + (uint64_t(0) - 64));  // payload + 2^64 - 64 ...
  wrapped.resize(good.size() - 64);                               // ... and 64 bytes fewer: sums agree mod 2^64
  expect_damaged(wrapped, "a payload size that wraps around");
  std::string long_entry = good;
  set_u64(long_entry, 32 + 16, uint64_t(0) - get_u64(good, 32 + 8) + 1);  // offset + length = 2^64 + 1
  set_u64(long_entry, 24, fnv1a64(std::string_view(long_entry).substr(32, 2 * 72)));
  expect_damaged(long_entry, "a record length that wraps around");
}

}  // namespace
}  // namespace ringscan::io
