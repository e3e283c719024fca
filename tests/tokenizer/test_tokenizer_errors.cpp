// Malformed or unsupported tokenizer files fail with one sentence that names
// the file and the field, never with a crash or a silently different tokenizer.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tokenizer/tokenizer.h"
#include "tokenizer_test_util.h"
#include "util/error.h"

namespace ringscan {
namespace {

using nlohmann::json;

// A small valid byte-level BPE: "a" "b" "ab" plus one special token.
json minimal() {
  return json::parse(R"({
    "version": "1.0", "truncation": null, "padding": null,
    "added_tokens": [{"id": 3, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false,
                      "normalized": false, "special": true}],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
    "post_processor": null,
    "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
    "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
              "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
              "vocab": {"a": 0, "b": 1, "ab": 2, "<s>": 3}, "merges": [["a", "b"]]}
  })");
}

// The message of the ringscan::Error thrown by loading `j`.
std::string load_error_text(const std::string& text, const std::string& config = {}) {
  try {
    Tokenizer::from_json(text, config, {}, "/ckpt/tokenizer.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::string load_error(const json& j) { return load_error_text(j.dump()); }

#define EXPECT_MESSAGE(message, ...)                                              \
  do {                                                                            \
    const std::string m_ = (message);                                             \
    for (const char* part : {__VA_ARGS__}) EXPECT_NE(m_.find(part), std::string::npos) << m_; \
  } while (0)

TEST(TokenizerErrors, MinimalTokenizerLoads) {
  const Tokenizer tok = Tokenizer::from_json(minimal().dump());
  EXPECT_EQ(tok.encode("ab<s>ba", false), (std::vector<std::int32_t>{2, 3, 1, 0}));
  EXPECT_EQ(tok.decode({2, 3, 1, 0}), "ab<s>ba");
  EXPECT_EQ(tok.decode({2, 3, 1, 0}, true), "abba");
}

TEST(TokenizerErrors, BadJson) {
  EXPECT_MESSAGE(load_error_text("{\"model\": "), "/ckpt/tokenizer.json", "not valid JSON");
  EXPECT_MESSAGE(load_error_text("[1, 2]"), "/ckpt/tokenizer.json", "JSON object");
  // Found by tools/fuzz: a number beyond double's range is nlohmann's out_of_range, not a parse_error.
  EXPECT_MESSAGE(load_error_text("{\"model\": 1e405}"), "/ckpt/tokenizer.json", "not valid JSON", "1e405");
  EXPECT_MESSAGE(load_error_text(minimal().dump(), "{\"add_bos_token\": 1e999}"), "/ckpt/tokenizer_config.json",
                 "not valid JSON");
}

TEST(TokenizerErrors, ModelProblems) {
  json j = minimal();
  j["model"]["type"] = "WordPiece";
  EXPECT_MESSAGE(load_error(j), "/ckpt/tokenizer.json", "model.type", "WordPiece", "BPE");
  j = minimal();
  j.erase("model");
  EXPECT_MESSAGE(load_error(j), "model", "missing");
  j = minimal();
  j["model"]["merges"].push_back(json::array({"a", "zz"}));
  EXPECT_MESSAGE(load_error(j), "model.merges[1]", "\"zz\"", "not in model.vocab");
  j = minimal();
  j["model"]["merges"] = json::array({"b a"});  // legacy string form; "ba" is missing
  EXPECT_MESSAGE(load_error(j), "model.merges[0]", "\"ba\"", "not in model.vocab");
  j = minimal();
  j["model"]["merges"] = json::array({"ab"});
  EXPECT_MESSAGE(load_error(j), "model.merges[0]", "separated by a space");
  j = minimal();
  j["model"]["vocab"]["c"] = "seven";
  EXPECT_MESSAGE(load_error(j), "model.vocab[\"c\"]", "non-negative integer");
  j = minimal();
  j["model"]["vocab"]["c"] = 1;
  EXPECT_MESSAGE(load_error(j), "id 1", "\"b\"", "\"c\"");
  j = minimal();
  j["model"]["dropout"] = 0.1;
  EXPECT_MESSAGE(load_error(j), "model.dropout", "random");
  j = minimal();
  j["model"]["continuing_subword_prefix"] = "##";
  EXPECT_MESSAGE(load_error(j), "model.continuing_subword_prefix");
  j = minimal();
  j["model"]["vocab"] = json::array();
  EXPECT_MESSAGE(load_error(j), "model.vocab", "object");
}

// Id tables are indexed by id: one stray huge id once made loading allocate 23 GB
// (268435456) or fail with "cannot create std::vector larger than max_size()"
// (2^31-1). Ids must stay below the vocab's entries plus the added tokens.
TEST(TokenizerErrors, SparseIdsAreRefusedBeforeAllocating) {
  for (const std::int64_t id : {std::int64_t{268435456}, std::int64_t{2147483647}, std::int64_t{6}}) {
    json j = minimal();
    j["model"]["vocab"]["c"] = id;  // 5 entries and 1 added token: ids must be below 6
    const std::string is_id = "is id " + std::to_string(id);
    EXPECT_MESSAGE(load_error(j), "/ckpt/tokenizer.json", "model.vocab[\"c\"]", is_id.c_str(),
                   "model.vocab has 5 entries and added_tokens 1", "below 6");
  }
  json j = minimal();
  j["added_tokens"][0]["id"] = 268435456;
  j["model"]["vocab"].erase("<s>");
  EXPECT_MESSAGE(load_error(j), "added_tokens[0].id", "is id 268435456", "below 4");
  j = minimal();
  j["model"]["vocab"]["c"] = 5;  // the highest id allowed (id 4 unused)
  EXPECT_EQ(Tokenizer::from_json(j.dump()).vocab_size(), 6);
}

TEST(TokenizerErrors, PipelineProblems) {
  json j = minimal();
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "_"}};
  EXPECT_MESSAGE(load_error(j), "pre_tokenizer", "\"Metaspace\"", "not support");
  j = minimal();
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers", json::array({{{"type", "ByteLevel"}}, {{"type", "Digits"}}})}};
  EXPECT_MESSAGE(load_error(j), "pre_tokenizer.pretokenizers[1]", "\"Digits\"");
  j = minimal();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"},
                        {"invert", false}};
  EXPECT_MESSAGE(load_error(j), "pre_tokenizer.pattern", "invalid regex");
  j["pre_tokenizer"]["pattern"] = {{"Regex", "\\w+"}};
  EXPECT_MESSAGE(load_error(j), "pre_tokenizer.pattern", "\\w", "not supported");
  j["pre_tokenizer"]["pattern"] = {{"Regex", "\\s+"}};
  j["pre_tokenizer"]["behavior"] = "Sideways";
  EXPECT_MESSAGE(load_error(j), "pre_tokenizer.behavior", "Sideways");
  j = minimal();
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers", json::array({{{"type", "ByteLevel"}},
                                                       {{"type", "Split"}, {"pattern", {{"String", " "}}},
                                                        {"behavior", "Isolated"}}})}};
  EXPECT_MESSAGE(load_error(j), "pre_tokenizer.pretokenizers[0]", "last pre-tokenizer");
  j = minimal();
  j["normalizer"] = {{"type", "NFKC"}};
  EXPECT_MESSAGE(load_error(j), "normalizer", "\"NFKC\"");
  j = minimal();
  j["decoder"] = {{"type", "Metaspace"}};
  EXPECT_MESSAGE(load_error(j), "decoder", "\"Metaspace\"");
  j = minimal();
  j["post_processor"] = {{"type", "RobertaProcessing"}};
  EXPECT_MESSAGE(load_error(j), "post_processor", "\"RobertaProcessing\"");
  j = minimal();
  j["post_processor"] = json::parse(R"({"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
      "pair": [], "special_tokens": {}})");
  EXPECT_MESSAGE(load_error(j), "post_processor.single[0]", "\"<bos>\"");
  j["post_processor"]["single"] = json::array({{{"Sequence", {{"id", "B"}, {"type_id", 0}}}}});
  EXPECT_MESSAGE(load_error(j), "post_processor.single[0]", "\"A\"");
}

TEST(TokenizerErrors, AddedTokenProblems) {
  json j = minimal();
  j["added_tokens"][0]["id"] = 4;  // within the ids allowed (below 5), but not <s>'s id in model.vocab
  EXPECT_MESSAGE(load_error(j), "added_tokens[0]", "\"<s>\"", "id 4", "id 3");
  j = minimal();
  j["added_tokens"].push_back(j["added_tokens"][0]);
  EXPECT_MESSAGE(load_error(j), "added_tokens[1]", "repeats");
  j = minimal();
  j["added_tokens"][0].erase("content");
  EXPECT_MESSAGE(load_error(j), "added_tokens[0].content");
}

TEST(TokenizerErrors, ConfigProblems) {
  EXPECT_MESSAGE(load_error_text(minimal().dump(), R"({"bos_token": "<bos>"})"), "/ckpt/tokenizer_config.json",
                 "bos_token", "\"<bos>\"", "not a token");
  EXPECT_MESSAGE(load_error_text(minimal().dump(), R"({"add_bos_token": "yes"})"), "tokenizer_config.json",
                 "add_bos_token");
  EXPECT_MESSAGE(load_error_text(minimal().dump(), "not json"), "tokenizer_config.json", "not valid JSON");
  try {
    Tokenizer::from_json(minimal().dump(), {}, R"({"eos_token_id": [3, 99]})", "/ckpt/tokenizer.json");
    ADD_FAILURE() << "no error for an eos_token_id outside the vocabulary";
  } catch (const Error& e) {
    EXPECT_MESSAGE(std::string(e.what()), "generation_config.json", "eos_token_id", "99");
  }
}

TEST(TokenizerErrors, MissingFilesAndBadIds) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "ringscan_tokenizer_errors";
  std::filesystem::create_directories(dir);
  try {
    Tokenizer::load(dir / "nope");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_MESSAGE(std::string(e.what()), "nope", "no such file");
  }
  try {
    Tokenizer::load(dir);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_MESSAGE(std::string(e.what()), "ringscan_tokenizer_errors", "no tokenizer.json");
  }
  std::ofstream(dir / "tokenizer.json") << minimal().dump();
  std::ofstream(dir / "generation_config.json") << R"({"eos_token_id": [3]})";
  const Tokenizer tok = Tokenizer::load(dir);
  EXPECT_EQ(tok.eos_ids(), std::vector<std::int32_t>{3});
  try {
    tok.decode({0, 4});
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_MESSAGE(std::string(e.what()), "id 4", "not in the vocabulary");
  }
  EXPECT_THROW(tok.decode({-1}), Error);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ringscan
