// The tokenizer's parts against independent references: the Unicode
// standard's own examples (UTF-8 replacement, NFC), FIPS test vectors
// (SHA-256), and properties that must hold for any input (decode(encode(x))
// is x with invalid bytes replaced; the heap and the scan merge alike; many
// threads give the same ids as one).
#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "tokenizer/nfc.h"
#include "tokenizer/regex.h"
#include "util/sha256.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"
#include "tokenizer_test_util.h"
#include "util/error.h"

namespace ringscan {
namespace {

using test::tokenizer_fixtures;

Tokenizer demo() { return Tokenizer::load(tokenizer_fixtures() + "/demo"); }

TEST(TokenizerUtf8, ReplacesMaximalSubpartsLikeTheUnicodeStandard) {
  // Unicode 15, section 3.9, Table 3-8: "U+FFFD for each maximal subpart".
  const std::string in = "\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64";
  std::string scratch;
  EXPECT_EQ(tok::utf8_sanitize(in, scratch),
            "a\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" "b\xEF\xBF\xBD" "c\xEF\xBF\xBD\xEF\xBF\xBD" "d");
  // Surrogates and overlongs are ill-formed at their lead byte (Table 3-7).
  EXPECT_EQ(tok::utf8_sanitize("\xED\xA0\x80", scratch), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(tok::utf8_sanitize("\xC0\xAF", scratch), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(tok::utf8_sanitize("\xF4\x90\x80\x80", scratch), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  const std::string valid = "caf\xC3\xA9 \xF0\x9F\x98\x80";
  EXPECT_EQ(tok::utf8_sanitize(valid, scratch).data(), valid.data());  // valid input is not copied
}

TEST(TokenizerNfc, ComposesReordersAndKeepsExclusions) {
  std::string s;
  EXPECT_EQ(tok::nfc("e\xCC\x81", s), "\xC3\xA9");                              // e + acute -> é
  EXPECT_EQ(tok::nfc("\xE2\x84\xAB", s), "\xC3\x85");                           // ANGSTROM SIGN -> Å
  EXPECT_EQ(tok::nfc("\xE0\xA5\x98", s), "\xE0\xA4\x95\xE0\xA4\xBC");           // U+0958 is excluded
  EXPECT_EQ(tok::nfc("\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB", s), "\xED\x95\x9C");  // Hangul L V T -> 한
  // a + dot below (220) + dot above (230), in either order -> ạ̇ with composed ạ.
  EXPECT_EQ(tok::nfc("a\xCC\x87\xCC\xA3", s), "\xE1\xBA\xA1\xCC\x87");
  EXPECT_EQ(tok::nfc("a\xCC\xA3\xCC\x87", s), "\xE1\xBA\xA1\xCC\x87");
  const std::string ascii = "plain ASCII text";
  EXPECT_EQ(tok::nfc(ascii, s).data(), ascii.data());
}

TEST(TokenizerSha256, FipsVectors) {
  EXPECT_EQ(ringscan::sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(ringscan::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(ringscan::sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(ringscan::sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(TokenizerRegex, WhitespaceFollowsOniguruma) {
  // PCRE2's \s also matches U+180E (no longer White_Space since Unicode 6.3);
  // HF's Oniguruma does not, so \s is translated.
  tok::RegexScratch scratch;
  const tok::Regex space("\\s", "test");
  EXPECT_TRUE(space.matches_at("\xE3\x80\x80", 0, scratch));   // U+3000
  EXPECT_FALSE(space.matches_at("\xE1\xA0\x8E", 0, scratch));  // U+180E
  const tok::Regex not_space("[^\\s]", "test");
  EXPECT_TRUE(not_space.matches_at("\xE1\xA0\x8E", 0, scratch));
  EXPECT_THROW(tok::Regex("\\w+", "test"), Error);
  EXPECT_THROW(tok::Regex("[[:alpha:]]", "test"), Error);
}

TEST(TokenizerRegex, EmptyMatchesAdvanceLikeTheOnigCrate) {
  tok::RegexScratch scratch;
  std::vector<tok::Span> spans;
  tok::Regex("x*", "test").find_all("axxb", scratch, spans);
  // onig's find_iter: "" at 0, "xx" at 1..3, "" at 4 (the "" at 3 follows a match and is skipped).
  EXPECT_EQ(spans, (std::vector<tok::Span>{{0, 0}, {1, 3}, {4, 4}}));
}

TEST(TokenizerBpe, HeapAndScanMergeAlike) {
  const Tokenizer tok = demo();
  const tok::BpeModel& model = tok.impl().model;
  tok::BpeScratch scratch;
  std::mt19937 rng(42);
  const std::string alphabet = "etaoinshrdlu ETAOIN_0123.,";
  int merged_trials = 0;
  for (int trial = 0; trial < 400; ++trial) {
    const int n = 2 + static_cast<int>(rng() % 120);
    std::vector<std::int32_t> symbols;
    for (int i = 0; i < n; ++i) {
      const char c = alphabet[rng() % alphabet.size()];
      symbols.push_back(*tok.token_to_id(c == ' ' ? "\xC4\xA0" : std::string(1, c)));
    }
    std::vector<std::int32_t> a = symbols, b = symbols;
    model.merge(a, scratch, false);
    model.merge(b, scratch, true);
    ASSERT_EQ(a, b) << "trial " << trial;
    merged_trials += a.size() < symbols.size();
  }
  EXPECT_GT(merged_trials, 300);  // the comparison is not vacuous: most words do merge
}

TEST(TokenizerProperties, DecodeInvertsEncodeOnAnyBytes) {
  // Byte-level BPE loses nothing but invalid UTF-8, which becomes U+FFFD.
  const Tokenizer tok = demo();
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    std::string bytes(rng() % 300, '\0');
    const bool ascii_heavy = trial % 2 == 0;
    for (char& c : bytes) c = static_cast<char>(ascii_heavy && rng() % 4 ? ' ' + rng() % 95 : rng() % 256);
    std::string scratch;
    const std::string valid(tok::utf8_sanitize(bytes, scratch));
    const auto ids = tok.encode(bytes, false);
    EXPECT_EQ(tok.decode(ids), valid) << "trial " << trial;
    EXPECT_EQ(tok.encode(valid, false), ids) << "trial " << trial;
  }
}

TEST(TokenizerProperties, LongRunsDoNotBreak) {
  // A megabyte in one pre-token exercises the heap merge and PCRE2's JIT stack.
  const Tokenizer tok = demo();
  std::string the;
  while (the.size() < (1 << 20)) the += "the";
  for (const std::string& text : {the, std::string(1 << 20, 'a'), std::string(1 << 20, ' '),
                                  std::string(1 << 20, 'Z'), std::string(1 << 20, '='), std::string(1 << 20, '\n')}) {
    const auto ids = tok.encode(text, false);
    EXPECT_FALSE(ids.empty());
    EXPECT_LE(ids.size(), text.size());
    EXPECT_EQ(tok.decode(ids), text);
  }
  EXPECT_LT(tok.encode(the, false).size(), the.size() / 2);  // one 1 MB word, merged
}

TEST(TokenizerProperties, ConcurrentCallsGiveTheSameIds) {
  const Tokenizer tok = demo();
  const std::string text = test::read_bytes(tokenizer_fixtures() + "/corpus/code_mixed.txt") +
                           test::read_bytes(tokenizer_fixtures() + "/corpus/multilingual.txt");
  const auto want = tok.encode(text, true);
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      int good = 0;
      for (int i = 0; i < 20; ++i) good += tok.encode(text, true) == want;
      ok[t] = good;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok, std::vector<int>(4, 20));
}

TEST(TokenizerProperties, TwoTokenizersOnOneThreadKeepTheirOwnCaches) {
  // Thread-local word caches must not leak ids between tokenizers.
  const Tokenizer a = demo();
  nlohmann::json j = nlohmann::json::parse(test::read_bytes(tokenizer_fixtures() + "/demo/tokenizer.json"));
  j["model"]["ignore_merges"] = false;
  j["model"]["merges"].erase(j["model"]["merges"].begin() + 200, j["model"]["merges"].end());
  const Tokenizer b = Tokenizer::from_json(j.dump());
  const std::string text = "the quick brown fox jumps over the lazy dog";
  const auto ia = a.encode(text, false), ib = b.encode(text, false);
  EXPECT_NE(ia, ib);
  EXPECT_EQ(a.encode(text, false), ia);
  EXPECT_EQ(b.encode(text, false), ib);
}

}  // namespace
}  // namespace ringscan
