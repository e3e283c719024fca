// Several short sequences prefilled together (stacked rows) equal each run alone.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "model/packed_forward.h"
#include "model/presets.h"
#include "model/random_checkpoint.h"

using namespace ringscan;
namespace fs = std::filesystem;

TEST(PackedForward, EqualsEachSequenceAlone) {
  for (bool variant : {false, true}) {
    Json j = model_config_to_json(preset_config("tiny"));
    if (variant) j["mlp_hidden_act"] = "silu", j["position_embedding_type"] = "rope", j["rope_theta"] = 100.0;
    ModelConfig c = parse_model_config(j, "packed");
    std::string dir = fs::temp_directory_path().string() + "/ringscan-test-packed-" + std::to_string(variant);
    fs::remove_all(dir);
    RandomCheckpointOptions o;
    o.dtype = DType::F32;
    write_random_checkpoint(c, dir, o);
    auto m = Model::load(dir, true);
    const int64_t D = c.hidden_size;
    std::vector<std::vector<int32_t>> seqs;
    for (int64_t len : {1, 5, 16, 17, 40, 2}) {
      std::vector<int32_t> ids(len);
      for (int64_t t = 0; t < len; ++t) ids[t] = static_cast<int32_t>((t * 31 + len * 7) % c.vocab_size);
      seqs.push_back(ids);
    }
    int64_t total = 0;
    for (const auto& s : seqs) total += s.size();
    std::vector<float> packed(total * D);
    forward_packed(*m, seqs, packed.data());
    int64_t row = 0;
    for (const auto& s : seqs) {
      std::vector<float> alone(s.size() * D);
      InferenceState st = m->new_state();
      m->forward(s.data(), s.size(), st, alone.data());
      for (size_t i = 0; i < alone.size(); ++i)  // fp32, same operations, GEMM blocking may differ
        ASSERT_NEAR(packed[row * D + i], alone[i], 1e-4f * (1 + std::fabs(alone[i]))) << "len " << s.size();
      row += s.size();
    }
  }
}
