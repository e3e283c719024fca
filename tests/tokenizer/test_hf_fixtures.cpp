// Every id against HF tokenizers: the demo tokenizer and variants of it (RFC
// 6902 patches of its tokenizer.json) on the committed corpus. Expected values
// come from tools/tokenizer/make_fixtures.py (tokenizers version in
// expected.json); equality is exact, ids and decoded bytes alike.
#include <gtest/gtest.h>

#include "tokenizer/demo_tokenizer.h"
#include "util/sha256.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_test_util.h"

namespace ringscan {
namespace {

using nlohmann::json;
using test::read_bytes;
using test::tokenizer_fixtures;

const json& expected() {
  static const json e = test::read_json(tokenizer_fixtures() + "/expected.json");
  return e;
}

std::string corpus_file(const std::string& rel) { return read_bytes(tokenizer_fixtures() + "/" + rel); }

void check_ids(const std::vector<std::int32_t>& got, const json& want, const std::string& what) {
  const auto want_ids = want.get<std::vector<std::int32_t>>();
  const long at = test::first_difference(got, want_ids);
  EXPECT_EQ(at, -1) << what << ": " << got.size() << " ids, HF has " << want_ids.size() << "; first difference at "
                    << at << ": ours " << test::around(got, at) << " / HF " << test::around(want_ids, at);
}

// Checks one corpus file against one expected case of `tok`.
void check_case(const Tokenizer& tok, const json& c, const std::string& label) {
  const std::string file = c["file"].get<std::string>();
  const std::string what = label + " " + file;
  const std::string text = corpus_file(file);
  const std::vector<std::int32_t> ids = tok.encode(text, false);
  check_ids(ids, c["ids"], what + " (add_special=false)");
  const std::vector<std::int32_t> with_special = tok.encode(text, true);
  if (c.contains("ids_special")) {
    check_ids(with_special, c["ids_special"], what + " (add_special=true)");
  } else {
    EXPECT_EQ(ringscan::sha256_hex(test::python_list(with_special)), c["ids_special_sha256"].get<std::string>())
        << what << " (add_special=true)";
  }
  // Decode HF's ids (not ours) so a decode bug cannot hide behind an encode bug.
  const auto hf_ids = c["ids"].get<std::vector<std::int32_t>>();
  const std::string decoded = tok.decode(hf_ids, false);
  EXPECT_EQ(ringscan::sha256_hex(decoded), c["decode_sha256"].get<std::string>())
      << what << ": decode differs from HF; ours starts \"" << decoded.substr(0, 80) << "\"";
  EXPECT_EQ(ringscan::sha256_hex(tok.decode(hf_ids, true)), c["decode_skip_special_sha256"].get<std::string>())
      << what << ": decode(skip_special=true) differs from HF";
}

Tokenizer demo() { return Tokenizer::load(tokenizer_fixtures() + "/demo"); }

TEST(TokenizerHf, DemoTokenizerEncodesCorpusLikeHf) {
  const Tokenizer tok = demo();
  ASSERT_GT(expected()["cases"].size(), 10u);
  for (const json& c : expected()["cases"]) check_case(tok, c, "demo");
}

TEST(TokenizerHf, DecodesIdSequencesLikeHf) {
  // Random ids (many not valid UTF-8 when concatenated) and slices that cut
  // multi-byte characters between ids.
  const Tokenizer tok = demo();
  ASSERT_GT(expected()["decode_cases"].size(), 40u);
  for (const json& c : expected()["decode_cases"]) {
    const auto ids = c["ids"].get<std::vector<std::int32_t>>();
    EXPECT_EQ(tok.decode(ids, false), c["text"].get<std::string>()) << "ids " << c["ids"].dump();
    EXPECT_EQ(tok.decode(ids, true), c["text_skip_special"].get<std::string>()) << "ids " << c["ids"].dump();
  }
}

TEST(TokenizerHf, VariantsEncodeLikeHf) {
  const json base = json::parse(read_bytes(tokenizer_fixtures() + "/demo/tokenizer.json"));
  ASSERT_GT(expected()["variants"].size(), 20u);
  for (const json& v : expected()["variants"]) {
    const std::string name = v["name"].get<std::string>();
    SCOPED_TRACE(name);
    const json patched = base.patch(v["patch"]);
    const Tokenizer tok = Tokenizer::from_json(patched.dump(), {}, {}, "variant " + name + "/tokenizer.json");
    for (const json& c : v["cases"]) check_case(tok, c, "variant " + name);
  }
}

TEST(TokenizerHf, MergesAsStringsGiveTheSameIds) {
  // Older tokenizer.json files write merges as "a b" strings instead of pairs.
  json j = json::parse(read_bytes(tokenizer_fixtures() + "/demo/tokenizer.json"));
  for (json& m : j["model"]["merges"]) m = m[0].get<std::string>() + " " + m[1].get<std::string>();
  const Tokenizer legacy = Tokenizer::from_json(j.dump());
  const Tokenizer tok = demo();
  for (const json& c : expected()["cases"]) {
    const std::string text = corpus_file(c["file"].get<std::string>());
    EXPECT_EQ(legacy.encode(text, false), tok.encode(text, false)) << c["file"];
  }
}

TEST(TokenizerHf, HashAndVocabularySizeMatchHf) {
  const Tokenizer tok = demo();
  EXPECT_EQ(tok.hash(), expected()["tokenizer_sha256"].get<std::string>());
  EXPECT_EQ(tok.vocab_size(), expected()["vocab_size"].get<std::int32_t>());
}

TEST(TokenizerHf, EncodeManyEqualsEncode) {
  const Tokenizer tok = demo();
  std::vector<std::string> texts;
  for (const json& c : expected()["cases"]) texts.push_back(corpus_file(c["file"].get<std::string>()));
  for (int round = 0; round < 3; ++round) texts.insert(texts.end(), texts.begin(), texts.begin() + 14);
  for (int threads : {1, 2, 3}) {
    const auto many = tok.encode_many(texts, true, threads);
    ASSERT_EQ(many.size(), texts.size());
    for (std::size_t i = 0; i < texts.size(); ++i) EXPECT_EQ(many[i], tok.encode(texts[i], true)) << i;
  }
}

TEST(TokenizerHf, EmbeddedDemoTokenizerIsTheFixture) {
  EXPECT_EQ(demo_tokenizer_json(), read_bytes(tokenizer_fixtures() + "/demo/tokenizer.json"));
  EXPECT_EQ(demo_tokenizer_config_json(), read_bytes(tokenizer_fixtures() + "/demo/tokenizer_config.json"));
  const Tokenizer embedded = Tokenizer::from_json(demo_tokenizer_json(), demo_tokenizer_config_json());
  const std::string text = corpus_file("corpus/code_mixed.txt");
  EXPECT_EQ(embedded.encode(text, true), demo().encode(text, true));
}

TEST(TokenizerHf, SpecialTokensFollowTokenizerConfig) {
  // Expected values are looked up in the fixture files themselves.
  const json config = test::read_json(tokenizer_fixtures() + "/demo/tokenizer_config.json");
  const json tj = test::read_json(tokenizer_fixtures() + "/demo/tokenizer.json");
  auto id_of = [&](const std::string& content) {
    for (const json& t : tj["added_tokens"]) {
      if (t["content"] == content) return t["id"].get<std::int32_t>();
    }
    return -1;
  };
  const Tokenizer tok = demo();
  ASSERT_TRUE(tok.bos_id().has_value());
  EXPECT_EQ(*tok.bos_id(), id_of(config["bos_token"].get<std::string>()));
  EXPECT_EQ(tok.eos_ids(), std::vector<std::int32_t>{id_of(config["eos_token"].get<std::string>())});
  EXPECT_EQ(tok.pad_id(), id_of(config["pad_token"].get<std::string>()));
  EXPECT_EQ(tok.unk_id(), id_of(config["unk_token"].get<std::string>()));
  EXPECT_EQ(tok.add_bos(), config["add_bos_token"].get<bool>());
  EXPECT_EQ(tok.chat_template(), config["chat_template"].get<std::string>());
  std::vector<std::int32_t> in_template;
  for (const json& t : tj["added_tokens"]) {
    if (config["chat_template"].get<std::string>().find(t["content"].get<std::string>()) != std::string::npos) {
      in_template.push_back(t["id"].get<std::int32_t>());
    }
  }
  EXPECT_EQ(tok.chat_template_special_ids(), in_template);
  EXPECT_EQ(in_template.size(), 3u);  // <|im_start|>, <|im_end|>, <think>
  // add_special puts exactly the BOS before the plain ids (the fixture's template is "<s> $A").
  const std::string text = corpus_file("corpus/english.txt");
  std::vector<std::int32_t> expect = {*tok.bos_id()};
  const auto plain = tok.encode(text, false);
  expect.insert(expect.end(), plain.begin(), plain.end());
  EXPECT_EQ(tok.encode(text, true), expect);
}

}  // namespace
}  // namespace ringscan
