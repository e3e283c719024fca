#include "model/presets.h"

#include "model/weights.h"
#include "util/error.h"

namespace ringscan {

namespace {
ModelConfig from_json(Json j) {
  j["model_type"] = "nemotron_h";
  return parse_model_config(j, "built-in preset");
}
}  // namespace

std::vector<std::string> preset_names() { return {"tiny", "demo", "nano-4b"}; }

ModelConfig preset_config(const std::string& name) {
  if (name == "tiny")
    return from_json({{"vocab_size", 512}, {"hidden_size", 64}, {"hybrid_override_pattern", "M*-M-"},
                      {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"head_dim", 16},
                      {"intermediate_size", 128}, {"mamba_num_heads", 8}, {"mamba_head_dim", 16},
                      {"ssm_state_size", 16}, {"n_groups", 2}, {"conv_kernel", 4}, {"chunk_size", 16}});
  if (name == "demo")  // vocab = the demo tokenizer's 4096 ids
    return from_json({{"vocab_size", 4096}, {"hidden_size", 256}, {"hybrid_override_pattern", "M-M*-M-M*-M-"},
                      {"num_attention_heads", 8}, {"num_key_value_heads", 2}, {"head_dim", 32},
                      {"intermediate_size", 1024}, {"mamba_num_heads", 16}, {"mamba_head_dim", 32},
                      {"ssm_state_size", 64}, {"n_groups", 2}, {"conv_kernel", 4}, {"chunk_size", 64}});
  if (name == "nano-4b")  // DESIGN.md §1
    return from_json({{"vocab_size", 131072}, {"hidden_size", 3136},
                      {"hybrid_override_pattern", "M-M-M-MM-M-M*-M-M*-M-M-M*-M-M-MM*-MMM-M-M-"},
                      {"num_attention_heads", 40}, {"num_key_value_heads", 8}, {"head_dim", 128},
                      {"intermediate_size", 12544}, {"mamba_num_heads", 96}, {"mamba_head_dim", 80},
                      {"ssm_state_size", 128}, {"n_groups", 8}, {"conv_kernel", 4}, {"chunk_size", 256}});
  std::string known;
  for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
  throw Error("unknown model preset \"" + name + "\" (known: " + known + ")");
}

int64_t parameter_count(const ModelConfig& c) {
  int64_t n = 0;
  for (const auto& t : expected_tensors(c)) {
    int64_t e = 1;
    for (auto d : t.shape) e *= d;
    n += e;
  }
  return n;
}

}  // namespace ringscan
