// The model's architecture, read from a checkpoint's config.json (HF
// NemotronHConfig, model_type "nemotron_h"). Accepts the current key names and
// the legacy `mamba_*` ones, `layers_block_type` or `hybrid_override_pattern`,
// and two variants other descriptions of the model state: gated SiLU MLP
// (`mlp_hidden_act: "silu"`) and rotary embeddings (`position_embedding_type:
// "rope"`, `rope_theta`, `partial_rotary_factor`).
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "util/json_util.h"

namespace ringscan {

enum class LayerKind : uint8_t { Mamba, Attention, Mlp };
enum class MlpKind : uint8_t { Relu2, SwiGlu };

const char* layer_kind_name(LayerKind k);
char layer_kind_symbol(LayerKind k);  // 'M', '*', '-' as in hybrid_override_pattern

struct ModelConfig {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  float norm_eps = 1e-5f;
  bool tie_word_embeddings = false;
  std::vector<LayerKind> layers;

  // Attention
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  bool rope = false;
  float rope_theta = 10000.f;
  int64_t rotary_dim = 0;  // head_dim * partial_rotary_factor, even

  // MLP
  int64_t intermediate_size = 0;
  MlpKind mlp = MlpKind::Relu2;

  // Mamba-2
  int64_t mamba_heads = 0;
  int64_t mamba_head_dim = 0;
  int64_t ssm_state = 0;
  int64_t n_groups = 0;
  int64_t conv_kernel = 0;
  int64_t chunk_size = 0;
  bool conv_bias = true;
  float dt_min_limit = 0.f;  // time_step_limit
  float dt_max_limit = std::numeric_limits<float>::infinity();

  // The context length the model was trained for (config.json's optional
  // max_position_embeddings, as HF's NemotronHConfig calls it); 0 = not given.
  int64_t max_position_embeddings = 0;

  Json raw;  // the config.json as read, kept for output attributes

  int64_t d_inner() const { return mamba_heads * mamba_head_dim; }
  int64_t conv_dim() const { return d_inner() + 2 * n_groups * ssm_state; }
  int64_t in_proj_dim() const { return d_inner() + conv_dim() + mamba_heads; }  // z | xBC | dt
  // A Mamba layer's decode state: its conv history (the last conv_kernel - 1 xBC
  // rows) and its SSM state [heads, head_dim, ssm_state], in floats.
  int64_t conv_history_elems() const { return (conv_kernel - 1) * conv_dim(); }
  int64_t ssm_state_elems() const { return mamba_heads * mamba_head_dim * ssm_state; }
  int64_t count(LayerKind k) const;
  std::string pattern() const;  // e.g. "M-M*-"
};

// Parses and validates; `source` names the file in errors.
ModelConfig parse_model_config(const Json& j, const std::string& source);
ModelConfig load_model_config(const std::string& model_dir);

// The config.json that describes `c` (current HF key names), for make-model.
Json model_config_to_json(const ModelConfig& c);

}  // namespace ringscan
