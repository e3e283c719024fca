// Token offsets (Tokenizer::encode_with_offsets) against HF tokenizers' offsets on the
// committed corpus (fixtures/expected_offsets.json, written by
// tools/tokenizer/make_fixtures.py), and against the text itself.
//
// HF gives character offsets; the fixture holds them as bytes of the corpus file.
// ringscan's are bytes too, and finer where a token holds part of a character (a
// byte-level token or a byte-fallback token): widened to whole characters they must
// equal HF's. Where the two differ on purpose (docs/tokenizer.md, "Offsets") the test
// checks what ringscan promises instead.
#include <gtest/gtest.h>

#include "tokenizer/byte_level.h"
#include "tokenizer/offset_map.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"
#include "tokenizer_test_util.h"

namespace ringscan {
namespace {

using nlohmann::json;
using test::read_bytes;
using test::tokenizer_fixtures;

const json& expected_ids() {
  static const json e = test::read_json(tokenizer_fixtures() + "/expected.json");
  return e;
}
const json& expected_offsets() {
  static const json e = test::read_json(tokenizer_fixtures() + "/expected_offsets.json");
  return e;
}

struct Range {
  std::uint64_t begin, end;
  bool operator==(const Range&) const = default;
};
std::ostream& operator<<(std::ostream& o, const Range& r) { return o << "[" << r.begin << ", " << r.end << ")"; }

// The fixture's (begin - previous end, length) pairs as ranges.
std::vector<Range> hf_ranges(const json& flat) {
  std::vector<Range> out;
  std::uint64_t previous_end = 0;
  for (std::size_t k = 0; k + 1 < flat.size(); k += 2) {
    const std::uint64_t b = previous_end + flat[k].get<std::int64_t>();
    out.push_back({b, b + flat[k + 1].get<std::uint64_t>()});
    previous_end = out.back().end;
  }
  return out;
}

// Per byte of `text`, the bytes of its character (an ill-formed sequence counts as one).
std::vector<Range> characters(const std::string& text) {
  std::vector<Range> of_byte(text.size());
  for (std::size_t i = 0; i < text.size();) {
    std::size_t bad = 0;
    std::size_t len = tok::utf8_sequence_length(text, i, &bad);
    if (len == 0) len = bad;
    for (std::size_t k = i; k < i + len; ++k) of_byte[k] = {i, i + len};
    i += len;
  }
  return of_byte;
}

Range widened(const Range& r, const std::vector<Range>& chars) {
  if (r.begin == r.end) return r;
  return {chars[r.begin].begin, chars[r.end - 1].end};
}

const json* ids_case(const std::string& variant, const std::string& file) {
  const json* cases = &expected_ids()["cases"];
  if (!variant.empty())
    for (const json& v : expected_ids()["variants"])
      if (v["name"] == variant) cases = &v["cases"];
  for (const json& c : *cases)
    if (c["file"] == file) return &c;
  return nullptr;
}

// One corpus file: ids as HF's, offsets in bounds and in order, and equal to HF's once
// widened to whole characters (with the documented exceptions).
void check_case(const Tokenizer& tok, const std::string& variant, const json& c, bool nfc) {
  const std::string file = c["file"].get<std::string>();
  SCOPED_TRACE(variant + " " + file);
  const std::string text = read_bytes(tokenizer_fixtures() + "/" + file);
  const std::vector<Range> chars = characters(text);
  const json* ids = ids_case(variant, file);
  ASSERT_NE(ids, nullptr);
  for (const char* key : {"offsets", "offsets_special"}) {
    if (!c.contains(key)) continue;
    const bool special = std::string(key) == "offsets_special";
    const Tokenizer::Encoding e = tok.encode_with_offsets(text, special);
    // The same ids as encode(), which test_hf_fixtures holds to HF's.
    ASSERT_EQ(e.ids, tok.encode(text, special)) << key;
    if (!special) {
      ASSERT_EQ(e.ids, (*ids)["ids"].get<std::vector<std::int32_t>>());
    }
    const std::vector<Range> hf = hf_ranges(c[key]);
    ASSERT_EQ(e.begin.size(), e.ids.size());
    ASSERT_EQ(e.end.size(), e.ids.size());
    ASSERT_EQ(hf.size(), e.ids.size()) << key;
    std::uint64_t previous_begin = 0;
    for (std::size_t k = 0; k < e.ids.size(); ++k) {
      const Range ours{e.begin[k], e.end[k]};
      ASSERT_LE(ours.begin, ours.end) << "token " << k;
      ASSERT_LE(ours.end, text.size()) << "token " << k;
      if (!tok.is_special(e.ids[k])) {
        EXPECT_GE(ours.begin, previous_begin) << "token " << k << " starts before the token before it";
        previous_begin = ours.begin;
      }
      const Range w = widened(ours, chars);
      if (w == hf[k]) continue;
      // A token made only of the space ByteLevel inserts covers nothing where HF gives it
      // the character after it.
      if (ours.begin == ours.end && ours.begin == hf[k].begin) continue;
      // NFC: a composed character covers everything it was made from; HF's covers
      // only its first source character.
      if (nfc && w.begin <= hf[k].begin && hf[k].end <= w.end) continue;
      ADD_FAILURE() << key << " token " << k << " (id " << e.ids[k] << "): ours " << ours << ", widened " << w
                    << ", HF " << hf[k];
    }
  }
}

TEST(TokenizerOffsets, DemoOffsetsMatchHf) {
  const Tokenizer tok = Tokenizer::load(tokenizer_fixtures() + "/demo");
  ASSERT_EQ(expected_offsets()["tokenizer_sha256"], tok.hash());
  ASSERT_GT(expected_offsets()["cases"].size(), 10u);
  for (const json& c : expected_offsets()["cases"]) check_case(tok, "", c, false);
}

TEST(TokenizerOffsets, VariantOffsetsMatchHf) {
  const json base = json::parse(read_bytes(tokenizer_fixtures() + "/demo/tokenizer.json"));
  ASSERT_GE(expected_offsets()["variants"].size(), 8u);
  for (const json& v : expected_offsets()["variants"]) {
    const std::string name = v["name"].get<std::string>();
    const json* patch = nullptr;
    for (const json& iv : expected_ids()["variants"])
      if (iv["name"] == name) patch = &iv["patch"];
    ASSERT_NE(patch, nullptr) << name;
    const json patched = base.patch(*patch);
    const Tokenizer tok = Tokenizer::from_json(patched.dump(), {}, {}, "variant " + name + "/tokenizer.json");
    const bool nfc = patched["normalizer"].is_object();
    for (const json& c : v["cases"]) check_case(tok, name, c, nfc);
  }
}

// Byte-level, no normalizer: each token's own bytes are exactly the text it covers, and
// the tokens tile the text.
TEST(TokenizerOffsets, DemoTokensTileTheText) {
  const Tokenizer tok = Tokenizer::load(tokenizer_fixtures() + "/demo");
  const tok::ByteLevelTable& bl = tok::ByteLevelTable::get();
  int files = 0;
  for (const json& c : expected_offsets()["cases"]) {
    const std::string text = read_bytes(tokenizer_fixtures() + "/" + c["file"].get<std::string>());
    if (!tok::utf8_is_valid(text)) continue;
    ++files;
    const Tokenizer::Encoding e = tok.encode_with_offsets(text, true);
    ASSERT_FALSE(e.ids.empty());
    EXPECT_EQ(e.ids[0], *tok.bos_id());  // the template's <s>, covering nothing
    EXPECT_EQ(e.begin[0], 0u);
    EXPECT_EQ(e.end[0], 0u);
    std::uint64_t at = 0;
    std::string raw;
    for (std::size_t k = 1; k < e.ids.size(); ++k) {
      ASSERT_EQ(e.begin[k], at) << c["file"] << " token " << k;
      const std::string token = *tok.id_to_token(e.ids[k]);
      if (tok.is_special(e.ids[k])) raw = token;  // written in the text as it is
      else ASSERT_TRUE(bl.to_bytes(token, raw)) << token;
      ASSERT_EQ(text.substr(e.begin[k], e.end[k] - e.begin[k]), raw) << c["file"] << " token " << k;
      at = e.end[k];
    }
    EXPECT_EQ(at, text.size()) << c["file"];
  }
  EXPECT_GT(files, 10);
}

TEST(TokenizerOffsets, InvalidUtf8MapsToTheBytesReplaced) {
  const Tokenizer tok = Tokenizer::load(tokenizer_fixtures() + "/demo");
  // "ab" + a lone continuation byte + "cd" + a truncated 3-byte sequence + "e".
  const std::string text = std::string("ab\x80" "cd\xE2\x82" "e", 8);
  const Tokenizer::Encoding e = tok.encode_with_offsets(text, false);
  ASSERT_EQ(e.ids, tok.encode(text, false));
  ASSERT_FALSE(e.ids.empty());
  EXPECT_EQ(e.begin.front(), 0u);
  EXPECT_EQ(e.end.back(), text.size());
  // Every byte is covered, and no token ends inside a replaced sequence.
  for (std::size_t k = 0; k < e.ids.size(); ++k) {
    EXPECT_NE(e.end[k], 6u) << k;  // inside \xE2\x82
    if (k) {
      EXPECT_LE(e.begin[k], e.end[k - 1]) << k;
    }
  }
}

TEST(TokenizerOffsets, OffsetMapWidensRewrittenUnits) {
  tok::OffsetMap m;
  m.copied(2);        // "ab"   -> [0, 2)
  m.rewritten(3, 1);  // U+FFFD -> [2, 3)
  m.copied(2);        // "cd"   -> [3, 5)
  m.rewritten(2, 3);  // "é" from "e" + U+0301 -> [5, 8)
  EXPECT_FALSE(m.identity());
  EXPECT_EQ(m.size(), 9u);
  EXPECT_EQ(m.source_begin(0), 0u);
  EXPECT_EQ(m.source_end(2), 2u);
  EXPECT_EQ(m.source_begin(3), 2u);  // inside the U+FFFD
  EXPECT_EQ(m.source_end(3), 3u);
  EXPECT_EQ(m.source_begin(4), 2u);
  EXPECT_EQ(m.source_end(5), 3u);
  EXPECT_EQ(m.source_begin(5), 3u);
  EXPECT_EQ(m.source_end(6), 4u);
  EXPECT_EQ(m.source_begin(7), 5u);
  EXPECT_EQ(m.source_end(8), 8u);  // inside "é": its whole source
  EXPECT_EQ(m.source_end(9), 8u);
  EXPECT_EQ(m.source_begin(9), 8u);
}

}  // namespace
}  // namespace ringscan
