// config.json parsing: every key spelling the family uses, and clear errors.
#include <gtest/gtest.h>

#include <cmath>

#include "model/config.h"
#include "model/presets.h"
#include "util/error.h"

using namespace ringscan;

namespace {
Json base() {
  return Json{{"model_type", "nemotron_h"}, {"vocab_size", 100}, {"hidden_size", 32},
              {"hybrid_override_pattern", "M*-"}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
              {"head_dim", 8}, {"intermediate_size", 64}, {"mamba_num_heads", 4}, {"mamba_head_dim", 8},
              {"ssm_state_size", 16}, {"n_groups", 2}, {"conv_kernel", 4}, {"chunk_size", 8}};
}
std::string error_of(const Json& j) {
  try {
    parse_model_config(j, "cfg.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Config, PatternAndListAgree) {
  Json a = base();
  Json b = base();
  b.erase("hybrid_override_pattern");
  b["layers_block_type"] = {"mamba", "attention", "mlp"};
  Json c = base();
  c.erase("hybrid_override_pattern");
  c["layers_block_type"] = {"linear_attention", "full_attention", "mlp"};  // transformers 5 names
  EXPECT_EQ(parse_model_config(a, "a").pattern(), "M*-");
  EXPECT_EQ(parse_model_config(b, "b").pattern(), "M*-");
  EXPECT_EQ(parse_model_config(c, "c").pattern(), "M*-");
}

TEST(Config, LegacyMambaNames) {
  Json j = base();
  for (const char* k : {"n_groups", "conv_kernel", "chunk_size"}) j.erase(k);
  j["mamba_n_groups"] = 1;
  j["mamba_d_conv"] = 3;
  j["mamba_chunk_size"] = 5;
  j["mamba_dt_limit"] = {0.01, 0.5};
  j["mamba_conv_bias"] = false;
  ModelConfig c = parse_model_config(j, "j");
  EXPECT_EQ(c.n_groups, 1);
  EXPECT_EQ(c.conv_kernel, 3);
  EXPECT_EQ(c.chunk_size, 5);
  EXPECT_FLOAT_EQ(c.dt_min_limit, 0.01f);
  EXPECT_FLOAT_EQ(c.dt_max_limit, 0.5f);
  EXPECT_FALSE(c.conv_bias);
}

TEST(Config, PythonInfinityInTimeStepLimit) {
  std::string text = base().dump();
  text.insert(text.size() - 1, ",\"time_step_limit\": [0.0, Infinity]");
  ModelConfig c = parse_model_config(parse_json_relaxed(text, "t"), "t");
  EXPECT_TRUE(std::isinf(c.dt_max_limit));
  // And make-model writes it back the way Python does.
  Json out = model_config_to_json(c);
  EXPECT_EQ(out["time_step_limit"][1], "Infinity");
}

TEST(Config, Variants) {
  Json j = base();
  j["mlp_hidden_act"] = "silu";
  j["position_embedding_type"] = "rope";
  j["rope_theta"] = 5000.0;
  j["partial_rotary_factor"] = 0.5;
  ModelConfig c = parse_model_config(j, "j");
  EXPECT_EQ(c.mlp, MlpKind::SwiGlu);
  EXPECT_TRUE(c.rope);
  EXPECT_EQ(c.rotary_dim, 4);
  EXPECT_FLOAT_EQ(c.rope_theta, 5000.f);
  EXPECT_FALSE(parse_model_config(base(), "b").rope);
}

TEST(Config, ClearErrors) {
  Json j = base();
  j["model_type"] = "llama";
  EXPECT_NE(error_of(j).find("model_type is \"llama\""), std::string::npos);
  j = base();
  j["hybrid_override_pattern"] = "M*E";
  EXPECT_NE(error_of(j).find("mixture-of-experts"), std::string::npos);
  j = base();
  j["layers_block_type"] = {"mamba", "mlp", "mlp"};
  EXPECT_NE(error_of(j).find("disagree"), std::string::npos);
  j = base();
  j["num_key_value_heads"] = 3;
  EXPECT_NE(error_of(j).find("multiple of num_key_value_heads"), std::string::npos);
  j = base();
  j.erase("vocab_size");
  EXPECT_NE(error_of(j).find("cfg.json has no \"vocab_size\""), std::string::npos);
  j = base();
  j["mlp_hidden_act"] = "gelu";
  EXPECT_NE(error_of(j).find("mlp_hidden_act \"gelu\""), std::string::npos);
  EXPECT_THROW(parse_json_relaxed("{\"a\": [1, 2", "broken.json"), Error);
}

// Values that would make the forward give NaN (recorded as results) are refused, as
// Python's json writes them (bare NaN / -Infinity) and as plain numbers.
TEST(Config, NonFiniteAndAbsurdNumbersAreRefused) {
  auto error_of_text = [](const std::string& key_value) {
    std::string text = base().dump();
    text.insert(text.size() - 1, "," + key_value);
    try {
      parse_model_config(parse_json_relaxed(text, "t"), "cfg.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  for (const char* eps : {"NaN", "-Infinity", "Infinity", "-1e-5", "0", "1e-60"})
    EXPECT_NE(error_of_text(std::string("\"layer_norm_epsilon\": ") + eps).find("\"layer_norm_epsilon\" must be a finite number > 0"),
              std::string::npos) << eps;
  for (const char* theta : {"NaN", "0", "-10000", "Infinity", "1e60"})
    EXPECT_NE(error_of_text(std::string("\"position_embedding_type\": \"rope\", \"rope_theta\": ") + theta)
                  .find("\"rope_theta\" must be a finite number > 0"),
              std::string::npos) << theta;
  EXPECT_NE(error_of_text("\"position_embedding_type\": \"rope\", \"partial_rotary_factor\": NaN").find("partial_rotary_factor"),
            std::string::npos);
  for (const char* lim : {"[NaN, NaN]", "[5, 0.001]", "[0.0, NaN]", "[-1, 1]", "[Infinity, Infinity]", "[NaN, 1]"})
    EXPECT_NE(error_of_text(std::string("\"time_step_limit\": ") + lim).find("time_step_limit must be [min, max]"),
              std::string::npos) << lim;
  // What real checkpoints hold still parses.
  EXPECT_EQ(error_of_text("\"time_step_limit\": [0.0, Infinity]"), "");
  EXPECT_EQ(error_of_text("\"time_step_limit\": [0.001, 0.1], \"layer_norm_epsilon\": 1e-5"), "");
  EXPECT_EQ(error_of_text("\"position_embedding_type\": \"rope\", \"rope_theta\": 10000"), "");
}

TEST(Config, Nano4BPresetHasTheDesignedShape) {
  ModelConfig c = preset_config("nano-4b");
  EXPECT_EQ(c.layers.size(), 42u);
  EXPECT_EQ(c.count(LayerKind::Mamba), 21);
  EXPECT_EQ(c.count(LayerKind::Attention), 4);
  EXPECT_EQ(c.count(LayerKind::Mlp), 17);
  EXPECT_EQ(c.d_inner(), 7680);
  // DESIGN.md §1: 3.97e9 parameters.
  EXPECT_NEAR(static_cast<double>(parameter_count(c)), 3.97e9, 0.01e9);
}

TEST(Config, MaxPositionEmbeddingsIsOptional) {
  EXPECT_EQ(parse_model_config(base(), "cfg.json").max_position_embeddings, 0);  // not given
  Json j = base();
  j["max_position_embeddings"] = 4096;
  const ModelConfig c = parse_model_config(j, "cfg.json");
  EXPECT_EQ(c.max_position_embeddings, 4096);
  EXPECT_EQ(parse_model_config(model_config_to_json(c), "again").max_position_embeddings, 4096);
  j["max_position_embeddings"] = -1;
  EXPECT_NE(error_of(j).find("cfg.json: max_position_embeddings must be >= 0"), std::string::npos) << error_of(j);
  j["max_position_embeddings"] = "long";
  EXPECT_NE(error_of(j).find("\"max_position_embeddings\" should be an integer"), std::string::npos) << error_of(j);
}
