// Checkpoint loading: single and sharded files, dtypes, and one clear error
// (non-zero exit from the real binary) for each kind of bad checkpoint.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "model/model.h"
#include "model/presets.h"
#include "model/random_checkpoint.h"
#include "util/error.h"
#include "util/json_util.h"

using namespace ringscan;
namespace fs = std::filesystem;

namespace {

struct CliResult {
  int code;
  std::string output;
};

CliResult run_cli(const std::string& args) {
  std::string cmd = std::string(RINGSCAN_BINARY_DIR) + "/ringscan " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int status = pclose(p);
  return {WEXITSTATUS(status), out};
}

std::string fresh_dir(const std::string& name) {
  std::string d = fs::temp_directory_path().string() + "/ringscan-test-ckpt-" + name;
  fs::remove_all(d);
  return d;
}

std::string tiny_model(const std::string& name, DType dtype = DType::F32, uint64_t shard = 4ull << 30) {
  std::string d = fresh_dir(name);
  RandomCheckpointOptions o;
  o.seed = 7;
  o.dtype = dtype;
  o.max_shard_bytes = shard;
  write_random_checkpoint(preset_config("tiny"), d, o);
  return d;
}

std::vector<float> run_logits(const std::string& dir, const std::vector<int32_t>& ids) {
  auto m = Model::load(dir, true);
  InferenceState st = m->new_state();
  std::vector<float> h(ids.size() * m->config().hidden_size), logits(ids.size() * m->config().vocab_size);
  m->forward(ids.data(), ids.size(), st, h.data());
  m->logits(h.data(), ids.size(), logits.data());
  return logits;
}

void expect_cli_error(const std::string& dir, const std::string& needle) {
  CliResult r = run_cli("forward --model " + dir + " --ids 1,2,3");
  EXPECT_NE(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("ringscan: error: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(needle), std::string::npos) << "expected \"" << needle << "\" in: " << r.output;
  // One sentence, not a crash dump.
  EXPECT_LT(std::count(r.output.begin(), r.output.end(), '\n'), 3) << r.output;
}

void patch_bytes(const std::string& path, const std::string& from, const std::string& to) {
  ASSERT_EQ(from.size(), to.size());
  std::string s = read_text_file(path);
  size_t pos = s.find(from);
  ASSERT_NE(pos, std::string::npos) << from;
  s.replace(pos, from.size(), to);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << s;
}

const std::vector<int32_t> kIds = {5, 17, 300, 2, 99, 511, 0, 42, 7, 7, 7, 128, 256, 64, 1, 3, 4, 9, 10, 11};

}  // namespace

TEST(Checkpoint, ShardedEqualsSingleFile) {
  std::string single = tiny_model("single");
  std::string sharded = tiny_model("sharded", DType::F32, 100 << 10);
  ASSERT_TRUE(fs::exists(sharded + "/model.safetensors.index.json"));
  ASSERT_TRUE(fs::exists(sharded + "/model-00002-of-00007.safetensors"));
  EXPECT_EQ(run_logits(single, kIds), run_logits(sharded, kIds));
}

// bf16 and f16 weights are converted on the fly; with values every dtype holds
// exactly (a bf16 checkpoint re-saved as f32), all three give the same logits.
TEST(Checkpoint, Bf16F16AndF32WeightsAgree) {
  std::string bf16 = tiny_model("bf16", DType::BF16);
  // Re-save the bf16 values as f32.
  std::string f32 = fresh_dir("bf16-as-f32");
  fs::create_directories(f32);
  fs::copy_file(bf16 + "/config.json", f32 + "/config.json");
  {
    Checkpoint c = Checkpoint::open(bf16);
    std::vector<TensorToWrite> out;
    for (const auto& [name, e] : c.tensors()) {
      out.push_back({name, DType::F32, e.shape, [&e](void* dst, int64_t n) {
                       for (int64_t i = 0; i < n; ++i)
                         static_cast<float*>(dst)[i] = bf16_to_f32(static_cast<const uint16_t*>(e.data)[i]);
                     }});
    }
    write_safetensors(f32 + "/model.safetensors", out);
  }
  std::vector<float> a = run_logits(bf16, kIds), b = run_logits(f32, kIds);
  ASSERT_EQ(a.size(), b.size());
  // Same weights, same fp32 arithmetic order: identical up to the GEMM's
  // blocking (panel conversion) — allow a few ulps of the logits' scale.
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-5f * (1 + std::fabs(b[i]))) << i;
}

TEST(Checkpoint, TruncatedFile) {
  std::string d = tiny_model("truncated");
  fs::resize_file(d + "/model.safetensors", fs::file_size(d + "/model.safetensors") / 2);
  expect_cli_error(d, "model.safetensors: tensor ");
  expect_cli_error(d, "truncated");
}

TEST(Checkpoint, TruncatedHeader) {
  std::string d = tiny_model("truncated-header");
  fs::resize_file(d + "/model.safetensors", 5);
  expect_cli_error(d, "is truncated");
}

TEST(Checkpoint, WrongShape) {
  std::string d = tiny_model("wrong-shape");
  Json cfg = read_json_file(d + "/config.json");
  cfg["intermediate_size"] = 96;  // the file holds [128, 64]
  write_json_file(d + "/config.json", cfg);
  expect_cli_error(d, "tensor backbone.layers.2.mixer.up_proj.weight has shape [128, 64], expected [96, 64]");
}

TEST(Checkpoint, MissingTensor) {
  std::string d = tiny_model("missing");
  Checkpoint c = Checkpoint::open(d);
  std::vector<TensorToWrite> out;
  for (const auto& [name, e] : c.tensors()) {
    if (name == "backbone.layers.0.mixer.A_log") continue;
    out.push_back({name, e.dtype, e.shape, [&e](void* dst, int64_t n) { std::memcpy(dst, e.data, n * 4); }});
  }
  write_safetensors(d + "/model.safetensors.new", out);
  fs::rename(d + "/model.safetensors.new", d + "/model.safetensors");
  expect_cli_error(d, "has no tensor backbone.layers.0.mixer.A_log (expected shape [8]");
}

TEST(Checkpoint, UnknownDtype) {
  std::string d = tiny_model("dtype");
  patch_bytes(d + "/model.safetensors", "\"dtype\":\"F32\"", "\"dtype\":\"I32\"");
  expect_cli_error(d, "has dtype \"I32\"; ringscan reads BF16, F16 and F32");
}

TEST(Checkpoint, MalformedHeaderJson) {
  std::string d = tiny_model("badheader");
  patch_bytes(d + "/model.safetensors", "{\"", "[\"");
  expect_cli_error(d, "model.safetensors (safetensors header) is not valid JSON");
}

TEST(Checkpoint, MalformedConfigJson) {
  std::string d = tiny_model("badconfig");
  std::string s = read_text_file(d + "/config.json");
  write_text_file(d + "/config.json", s.substr(0, s.size() / 2));
  expect_cli_error(d, "config.json is not valid JSON");
}

TEST(Checkpoint, MissingShard) {
  std::string d = tiny_model("missing-shard", DType::F32, 100 << 10);
  fs::remove(d + "/model-00003-of-00007.safetensors");
  expect_cli_error(d, "model-00003-of-00007.safetensors");
}

TEST(Checkpoint, MissingFolderAndBadIds) {
  expect_cli_error("/nonexistent/model", "/nonexistent/model");
  std::string d = tiny_model("bad-ids");
  CliResult r = run_cli("forward --model " + d + " --ids 1,2,99999");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("token id 99999 at position 2 is outside the vocabulary"), std::string::npos) << r.output;
  r = run_cli("forward --model " + d + " --ids 1,x");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("\"x\" is not a token id"), std::string::npos) << r.output;
  // An empty item is a lost id, not a separator to skip.
  for (const char* ids : {"1,,2", ",1,2", "1,2,", "1, ,2"}) {
    r = run_cli(std::string("forward --model ") + d + " --ids '" + ids + "'");
    EXPECT_NE(r.code, 0) << ids;
    EXPECT_NE(r.output.find("an empty id"), std::string::npos) << ids << ": " << r.output;
  }
  r = run_cli("forward --model " + d + " --ids '1, 2 3'");
  EXPECT_EQ(r.code, 0) << r.output;
}

TEST(Checkpoint, UnexpectedTensorsAreReported) {
  std::string d = tiny_model("extra");
  Checkpoint c = Checkpoint::open(d);
  std::vector<TensorToWrite> out;
  for (const auto& [name, e] : c.tensors())
    out.push_back({name, e.dtype, e.shape, [&e](void* dst, int64_t n) { std::memcpy(dst, e.data, n * 4); }});
  float extra[3] = {1, 2, 3};
  out.push_back({"backbone.layers.9.mixer.mystery", DType::F32, {3}, [&](void* dst, int64_t n) { std::memcpy(dst, extra, 12); }});
  write_safetensors(d + "/model.safetensors.new", out);
  fs::rename(d + "/model.safetensors.new", d + "/model.safetensors");
  CliResult r = run_cli("forward --model " + d + " --ids 1,2");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("warning: checkpoint " + d + " has 1 tensor(s) this model does not use, e.g. backbone.layers.9.mixer.mystery"),
            std::string::npos)
      << r.output;
}

namespace {

// A model folder whose model.safetensors has this header text and these data bytes.
std::string raw_safetensors(const std::string& name, const std::string& header, const std::string& data) {
  std::string d = fresh_dir(name);
  fs::create_directories(d);
  std::string bytes(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(bytes.data(), &n, 8);
  std::ofstream(d + "/model.safetensors", std::ios::binary) << bytes << header << data;
  return d;
}

std::string open_error(const std::string& dir) {
  try {
    Checkpoint::open(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

// JSON leaves repeated keys open and nlohmann keeps the last: a reader that keeps the
// first would see another model. config.json, safetensors headers and the shard index
// refuse them, naming the key.
TEST(Checkpoint, RepeatedKeysAreRefused) {
  try {
    parse_json_relaxed(R"({"a": 1, "b": {"c": 2, "c": 3}})", "x.json");
    ADD_FAILURE() << "no error for a repeated nested key";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "x.json repeats the key \"c\" in the object at [\"b\"]; each key may appear once");
  }
  // Found by tools/fuzz: a number beyond double's range (Python reads it as inf) is
  // nlohmann's out_of_range, which escaped as an internal error.
  try {
    parse_json_relaxed(R"({"layer_norm_epsilon": 1e405})", "config.json");
    ADD_FAILURE() << "no error for 1e405";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("config.json is not valid JSON"), std::string::npos) << e.what();
  }
  // The same key in different objects, and in an array of objects, is fine.
  EXPECT_EQ(parse_json_relaxed(R"([{"a": 1}, {"a": 2}])", "y.json")[1]["a"], 2);

  std::string d = tiny_model("repeated-config-key");
  std::string cfg = read_text_file(d + "/config.json");
  cfg.insert(cfg.find('{') + 1, "\"hidden_size\": 48,");
  write_text_file(d + "/config.json", cfg);
  expect_cli_error(d, "config.json repeats the key \"hidden_size\" in the top-level object");

  const std::string two = std::string(8, '\0');
  d = raw_safetensors("repeated-tensor",
                      R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                      R"( "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})",
                      two);
  EXPECT_NE(open_error(d).find("repeats the key \"w\""), std::string::npos) << open_error(d);

  d = tiny_model("repeated-index-key", DType::F32, 100 << 10);
  std::string index = read_text_file(d + "/model.safetensors.index.json");
  const size_t map = index.find("\"weight_map\"");
  ASSERT_NE(map, std::string::npos);
  index.insert(index.find('{', map) + 1, "\"lm_head.weight\": \"model-00001-of-00007.safetensors\",");
  write_text_file(d + "/model.safetensors.index.json", index);
  EXPECT_NE(open_error(d).find("model.safetensors.index.json repeats the key \"lm_head.weight\""), std::string::npos)
      << open_error(d);
}

// The format gives each tensor bytes of its own, tiling the data section.
TEST(Checkpoint, OverlappingOrStrayBytesAreRefused) {
  const std::string data(16, '\0');
  std::string d = raw_safetensors("overlap",
                                  R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                                  R"( "b": {"dtype": "F32", "shape": [3], "data_offsets": [4, 16]}})",
                                  data);
  EXPECT_NE(open_error(d).find("tensors a and b overlap in the file (bytes 4 to 8 of the data)"), std::string::npos)
      << open_error(d);
  d = raw_safetensors("same-bytes",
                      R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},)"
                      R"( "b": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})",
                      data);
  EXPECT_NE(open_error(d).find("overlap"), std::string::npos) << open_error(d);
  d = raw_safetensors("gap",
                      R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},)"
                      R"( "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})",
                      data);
  EXPECT_NE(open_error(d).find("bytes 4 to 8 of the data belong to no tensor"), std::string::npos) << open_error(d);
  d = raw_safetensors("trailing", R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", data);
  EXPECT_NE(open_error(d).find("the last 8 bytes of the file belong to no tensor"), std::string::npos) << open_error(d);
  // Back to back, including an empty tensor, is a valid file.
  d = raw_safetensors("tiled",
                      R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                      R"( "e": {"dtype": "F32", "shape": [0, 3], "data_offsets": [8, 8]},)"
                      R"( "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})",
                      data);
  EXPECT_EQ(Checkpoint::open(d).tensors().size(), 3u);
}

// [2^40, 2^40] of F32 is 2^82 bytes: the size check must not wrap around to 0.
TEST(Checkpoint, ShapeSizesDoNotOverflow) {
  std::string d = raw_safetensors("huge-shape",
                                  R"({"w": {"dtype": "F32", "shape": [1099511627776, 1099511627776], "data_offsets": [0, 0]}})",
                                  "");
  EXPECT_NE(open_error(d).find("tensor w has shape [1099511627776, 1099511627776], whose size in bytes does not fit in 64 bits"),
            std::string::npos)
      << open_error(d);
  d = raw_safetensors("wrapping-shape",
                      R"({"w": {"dtype": "BF16", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}})", "");
  EXPECT_NE(open_error(d).find("does not fit in 64 bits"), std::string::npos) << open_error(d);
}

TEST(Checkpoint, ModelFolderThatIsAFileIsNamedAsSuch) {
  std::string d = tiny_model("folder-is-file");
  expect_cli_error(d + "/config.json", "model folder " + d + "/config.json is a file, not a folder");
  CliResult r = run_cli("info --model " + d + "/config.json");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("is a file, not a folder"), std::string::npos) << r.output;
  // The ids file of forward: a folder is not a file "holding no token ids".
  r = run_cli("forward --model " + d + " --ids-file " + d);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find(d + " is a folder; expected a file"), std::string::npos) << r.output;
}
