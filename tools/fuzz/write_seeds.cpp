// Writes the seed corpora of the fuzz targets from the test fixtures (run by
// scripts/fuzz.sh; nothing here is committed). Usage: write_seeds OUT_DIR
//   safetensors/     each tests/fixtures/hf checkpoint re-saved with every dimension cut
//                    to at most 2 (same names, dtypes, layout), and index.json files
//   config/          the fixtures' config.json files
//   tokenizer/       the corpus texts (cut to 2 KB; for the demo tokenizer), and
//                    "tokenizer.json \0 text \0 tokenizer_config.json" with a small
//                    tokenizer cut from the demo one
//   part_file/       part files and single records of tests/io's fixture results
//   result_reader/   byte strings: fuzz_result_reader reads them as edits to a valid file
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include "fuzz_util.h"
#include "io/part_file.h"
#include "model/safetensors.h"
#include "store_fixture.h"
#include "util/json_util.h"

using namespace ringscan;
namespace fs = std::filesystem;

namespace {

const std::string kSource = RINGSCAN_SOURCE_DIR;

void put(const std::string& path, const std::string& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

std::vector<fs::path> fixture_checkpoints() {
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(kSource + "/tests/fixtures/hf"))
    if (fs::exists(e.path() / "config.json")) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

void safetensors_seeds(const std::string& out) {
  fs::create_directories(out);
  for (const fs::path& dir : fixture_checkpoints()) {
    const Checkpoint c = Checkpoint::open(dir.string());
    std::vector<TensorToWrite> small;
    for (const auto& [name, t] : c.tensors()) {
      std::vector<int64_t> shape = t.shape;
      for (int64_t& d : shape) d = std::min<int64_t>(d, 2);
      const int elem = dtype_size(t.dtype);
      small.push_back({name, t.dtype, shape, [elem](void* dst, int64_t n) { std::memset(dst, 0x3f, n * elem); }});
    }
    write_safetensors(out + "/" + dir.filename().string() + ".safetensors", small);
    if (fs::exists(dir / "model.safetensors.index.json"))
      put(out + "/" + dir.filename().string() + ".index.json",
          read_text_file((dir / "model.safetensors.index.json").string()));
  }
  Json index = {{"metadata", {{"total_size", 48}}}, {"weight_map", Json::object()}};
  for (const auto& [name, shard] : fuzz::kShardTensors) index["weight_map"][name] = shard;
  put(out + "/shards.index.json", index.dump(2));
}

void config_seeds(const std::string& out) {
  for (const fs::path& dir : fixture_checkpoints())
    put(out + "/" + dir.filename().string() + ".json", read_text_file((dir / "config.json").string()));
}

// The demo tokenizer cut to its first specials and some hundreds of ordinary tokens,
// renumbered densely, with the merges among them.
std::string small_demo_tokenizer() {
  Json j = parse_json_relaxed(read_text_file(kSource + "/tests/tokenizer/fixtures/demo/tokenizer.json"), "demo");
  std::vector<std::pair<int64_t, std::string>> by_id;
  for (const auto& [token, id] : j["model"]["vocab"].items()) by_id.emplace_back(id.get<int64_t>(), token);
  std::sort(by_id.begin(), by_id.end());
  Json vocab = Json::object();
  std::map<int64_t, int64_t> renumber;
  for (const auto& [id, token] : by_id) {
    if (!(id < 12 || (id >= 1000 && id < 1400))) continue;
    const int64_t fresh = int64_t(renumber.size());
    renumber[id] = fresh;
    vocab[token] = fresh;
  }
  Json merges = Json::array();
  for (const Json& m : j["model"]["merges"]) {
    const std::string a = m[0], b = m[1];
    if (vocab.contains(a) && vocab.contains(b) && vocab.contains(a + b)) merges.push_back(m);
  }
  Json added = Json::array();
  for (Json t : j["added_tokens"]) {
    const auto it = renumber.find(t["id"].get<int64_t>());
    if (it == renumber.end()) continue;
    t["id"] = it->second;
    added.push_back(t);
  }
  j["model"]["vocab"] = vocab;
  j["model"]["merges"] = merges;
  j["added_tokens"] = added;
  return j.dump();
}

void tokenizer_seeds(const std::string& out) {
  const std::string small = small_demo_tokenizer();
  const std::string config = read_text_file(kSource + "/tests/tokenizer/fixtures/demo/tokenizer_config.json");
  const std::string nul(1, '\0');
  for (const auto& e : fs::directory_iterator(kSource + "/tests/tokenizer/fixtures/corpus")) {
    std::string text = read_text_file(e.path().string()).substr(0, 2048);
    text.erase(std::remove(text.begin(), text.end(), '\0'), text.end());
    const std::string name = e.path().stem().string();
    put(out + "/" + name + ".txt", text);
    put(out + "/" + name + ".with-tokenizer", small + nul + text.substr(0, 256) + nul + config);
  }
}

void part_file_seeds(const std::string& out) {
  std::vector<io::DocumentResult> all;
  for (uint64_t i = 0; i < 6; ++i) {
    all.push_back(io::test::fixture_result(i));
    put(out + "/record" + std::to_string(i) + ".bin", io::encode_result(all.back()));
    put(out + "/part" + std::to_string(i) + ".bin", io::encode_part({all.back()}));
  }
  put(out + "/part-all.bin", io::encode_part(all));
}

// fuzz_result_reader's inputs are edits to ResultFileSpec::valid (tests/io): a few
// deterministic byte strings to start from (the empty one is the valid file as is).
void result_reader_seeds(const std::string& out) {
  uint64_t state = 0x9e3779b97f4a7c15ULL;
  for (size_t k = 0; k < 16; ++k) {
    std::string bytes;
    for (size_t i = 0; i < 4 * k; ++i) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      bytes += char(state >> 56);
    }
    put(out + "/edits" + std::to_string(k) + ".bin", bytes);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: write_seeds OUT_DIR\n";
    return 2;
  }
  const std::string out = argv[1];
  try {
    safetensors_seeds(out + "/safetensors");
    config_seeds(out + "/config");
    tokenizer_seeds(out + "/tokenizer");
    part_file_seeds(out + "/part_file");
    result_reader_seeds(out + "/result_reader");
  } catch (const std::exception& e) {
    std::cerr << "write_seeds: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
