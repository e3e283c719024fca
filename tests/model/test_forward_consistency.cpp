// The forward is one computation however it is cut: prefill in blocks of any
// size, or token-by-token decode from the carried state, gives the logits of a
// single pass. (Agreement with HF transformers is test_hf_parity.cpp.)
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "model/model.h"
#include "model/presets.h"
#include "model/random_checkpoint.h"
#include "util/npy.h"

using namespace ringscan;
namespace fs = std::filesystem;

namespace {

std::string make_model(const std::string& name, ModelConfig c) {
  std::string d = fs::temp_directory_path().string() + "/ringscan-test-consistency-" + name;
  fs::remove_all(d);
  RandomCheckpointOptions o;
  o.seed = 11;
  o.dtype = DType::F32;
  write_random_checkpoint(c, d, o);
  return d;
}

std::vector<int32_t> ids_for(int64_t n, int64_t vocab) {
  std::vector<int32_t> ids(n);
  uint64_t s = 12345;
  for (auto& id : ids) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    id = static_cast<int32_t>((s >> 33) % vocab);
  }
  return ids;
}

std::vector<float> logits_in_blocks(Model& m, const std::vector<int32_t>& ids, int64_t block) {
  m.set_block_tokens(block);
  const int64_t n = ids.size(), D = m.config().hidden_size, V = m.config().vocab_size;
  InferenceState st = m.new_state();
  std::vector<float> h(n * D), logits(n * V);
  // Feed in pieces of `block` too, so the state carries across calls as in decode.
  for (int64_t i = 0; i < n; i += block) {
    int64_t nb = std::min(block, n - i);
    m.forward(ids.data() + i, nb, st, h.data() + i * D);
  }
  m.logits(h.data(), n, logits.data());
  return logits;
}

// fp32 with a different summation order (chunk boundaries move): relative
// agreement to 2e-4 of the logits' scale is far below any real bug's effect
// (a wrong state carry changes logits at O(1)).
void expect_close(const std::vector<float>& a, const std::vector<float>& b, const char* what) {
  ASSERT_EQ(a.size(), b.size());
  double scale = 0, worst = 0;
  for (float v : b) scale = std::max(scale, static_cast<double>(std::fabs(v)));
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, static_cast<double>(std::fabs(a[i] - b[i])));
  EXPECT_LT(worst, 2e-4 * scale) << what << ": max |diff| " << worst << " at logit scale " << scale;
}

}  // namespace

class ForwardConsistency : public ::testing::TestWithParam<std::string> {};

TEST_P(ForwardConsistency, BlocksAndDecodeMatchOnePass) {
  ModelConfig c = preset_config("tiny");
  if (GetParam() == "swiglu-rope") {
    Json j = model_config_to_json(c);
    j["mlp_hidden_act"] = "silu";
    j["position_embedding_type"] = "rope";
    j["rope_theta"] = 1000.0;
    j["partial_rotary_factor"] = 0.5;
    c = parse_model_config(j, "variant");
  }
  std::string dir = make_model(GetParam(), c);
  auto m = Model::load(dir, true);
  const auto ids = ids_for(3 * c.chunk_size + 5, c.vocab_size);
  auto whole = logits_in_blocks(*m, ids, 4096);
  expect_close(logits_in_blocks(*m, ids, c.chunk_size), whole, "chunk-sized blocks");
  expect_close(logits_in_blocks(*m, ids, 7), whole, "blocks of 7");
  expect_close(logits_in_blocks(*m, ids, 1), whole, "token-by-token decode");
}

INSTANTIATE_TEST_SUITE_P(Variants, ForwardConsistency, ::testing::Values("relu2-nope", "swiglu-rope"));

TEST(ForwardCli, LogitsOutMatchesInProcess) {
  std::string dir = make_model("cli", preset_config("tiny"));
  const auto ids = ids_for(40, 512);
  std::string ids_arg;
  for (auto id : ids) {
    if (!ids_arg.empty()) ids_arg += ',';
    ids_arg += std::to_string(id);
  }
  std::string npy = dir + "/logits.npy";
  std::string cmd = std::string(RINGSCAN_BINARY_DIR) + "/ringscan forward --model " + dir + " --ids " + ids_arg +
                    " --top-k 2 --logits-out " + npy + " > " + dir + "/out.jsonl";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  NpyArray a = read_npy(npy);
  ASSERT_EQ(a.shape, (std::vector<int64_t>{40, 512}));
  auto m = Model::load(dir, true);
  auto expected = logits_in_blocks(*m, ids, 4096);
  for (size_t i = 0; i < expected.size(); ++i) ASSERT_EQ(a.data[i], expected[i]) << i;
}
