#include "model/config.h"

#include <cmath>
#include <cstdio>
#include <initializer_list>

#include "model/safetensors.h"
#include "util/error.h"

namespace ringscan {

const char* layer_kind_name(LayerKind k) {
  switch (k) {
    case LayerKind::Mamba: return "mamba";
    case LayerKind::Attention: return "attention";
    case LayerKind::Mlp: return "mlp";
  }
  return "?";
}

char layer_kind_symbol(LayerKind k) {
  return k == LayerKind::Mamba ? 'M' : k == LayerKind::Attention ? '*' : '-';
}

int64_t ModelConfig::count(LayerKind k) const {
  int64_t n = 0;
  for (auto l : layers) n += (l == k);
  return n;
}

std::string ModelConfig::pattern() const {
  std::string p;
  for (auto l : layers) p += layer_kind_symbol(l);
  return p;
}

namespace {

struct Reader {
  const Json& j;
  const std::string& source;

  // The first of `keys` present, or nullptr.
  const Json* find(std::initializer_list<const char*> keys) const {
    for (const char* k : keys)
      if (j.contains(k) && !j[k].is_null()) return &j[k];
    return nullptr;
  }
  int64_t integer(std::initializer_list<const char*> keys, int64_t fallback, bool required = false) const {
    const Json* v = find(keys);
    if (!v) {
      if (required) throw Error(source + " has no \"" + *keys.begin() + "\" (an integer is required)");
      return fallback;
    }
    if (!v->is_number_integer())
      throw Error(source + ": \"" + *keys.begin() + "\" should be an integer, got " + v->dump());
    return v->get<int64_t>();
  }
  double number(std::initializer_list<const char*> keys, double fallback) const {
    const Json* v = find(keys);
    return v ? json_number(*v, source + ": \"" + *keys.begin() + "\"") : fallback;
  }
  bool boolean(std::initializer_list<const char*> keys, bool fallback) const {
    const Json* v = find(keys);
    if (!v) return fallback;
    if (!v->is_boolean()) throw Error(source + ": \"" + *keys.begin() + "\" should be true or false, got " + v->dump());
    return v->get<bool>();
  }
  std::string string(std::initializer_list<const char*> keys, const std::string& fallback) const {
    const Json* v = find(keys);
    if (!v) return fallback;
    if (!v->is_string()) throw Error(source + ": \"" + *keys.begin() + "\" should be a string, got " + v->dump());
    return v->get<std::string>();
  }
};

LayerKind kind_from_symbol(char c, const std::string& source) {
  switch (c) {
    case 'M': return LayerKind::Mamba;
    case '*': return LayerKind::Attention;
    case '-': return LayerKind::Mlp;
    case 'E': throw Error(source + ": hybrid_override_pattern has a mixture-of-experts layer 'E', which ringscan does not support");
  }
  throw Error(source + ": hybrid_override_pattern has unknown layer symbol '" + std::string(1, c) + "' (expected M, * or -)");
}

LayerKind kind_from_name(const std::string& s, const std::string& source) {
  if (s == "mamba" || s == "linear_attention" || s == "M") return LayerKind::Mamba;
  if (s == "attention" || s == "full_attention" || s == "*") return LayerKind::Attention;
  if (s == "mlp" || s == "-") return LayerKind::Mlp;
  if (s == "moe") throw Error(source + ": layers_block_type has a mixture-of-experts layer \"moe\", which ringscan does not support");
  throw Error(source + ": layers_block_type has unknown layer type \"" + s + "\" (expected mamba, attention or mlp)");
}

void require_positive(int64_t v, const char* name, const std::string& source) {
  if (v <= 0) throw Error(source + ": \"" + name + "\" must be positive, got " + std::to_string(v));
}

// As Python's json writes it, so that the message shows what the file holds.
std::string json_number_text(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

// A float the forward divides by or takes powers of: NaN, infinity, zero or a
// negative value would give NaN log-probs that look like results.
float require_finite_positive(double v, const char* name, const std::string& source) {
  const float f = static_cast<float>(v);
  if (!(std::isfinite(f) && f > 0))
    throw Error(source + ": \"" + name + "\" must be a finite number > 0 (as float32), got " + json_number_text(v));
  return f;
}

}  // namespace

ModelConfig parse_model_config(const Json& j, const std::string& source) {
  if (!j.is_object()) throw Error(source + " should hold a JSON object");
  Reader r{j, source};
  std::string type = r.string({"model_type"}, "");
  if (type != "nemotron_h")
    throw Error(source + ": model_type is \"" + type + "\", ringscan runs \"nemotron_h\" models");

  ModelConfig c;
  c.raw = j;
  c.vocab_size = r.integer({"vocab_size"}, 0, true);
  c.hidden_size = r.integer({"hidden_size"}, 0, true);
  c.norm_eps = require_finite_positive(r.number({"layer_norm_epsilon", "rms_norm_eps", "norm_eps"}, 1e-5),
                                       "layer_norm_epsilon", source);
  c.tie_word_embeddings = r.boolean({"tie_word_embeddings"}, false);

  const Json* list = r.find({"layers_block_type", "layer_types"});
  const Json* pattern = r.find({"hybrid_override_pattern"});
  if (list) {
    if (!list->is_array()) throw Error(source + ": layers_block_type should be a list of strings");
    for (const auto& e : *list) {
      if (!e.is_string()) throw Error(source + ": layers_block_type should be a list of strings");
      c.layers.push_back(kind_from_name(e.get<std::string>(), source));
    }
  }
  if (pattern) {
    if (!pattern->is_string()) throw Error(source + ": hybrid_override_pattern should be a string");
    std::vector<LayerKind> from_pattern;
    for (char ch : pattern->get<std::string>()) from_pattern.push_back(kind_from_symbol(ch, source));
    if (list && from_pattern != c.layers)
      throw Error(source + ": hybrid_override_pattern and layers_block_type disagree");
    c.layers = from_pattern;
  }
  if (c.layers.empty()) throw Error(source + " has neither layers_block_type nor hybrid_override_pattern (the layer pattern)");
  int64_t n_layers = r.integer({"num_hidden_layers"}, static_cast<int64_t>(c.layers.size()));
  if (n_layers != static_cast<int64_t>(c.layers.size()))
    throw Error(source + ": num_hidden_layers is " + std::to_string(n_layers) + " but the layer pattern has " +
                std::to_string(c.layers.size()) + " layers");

  c.num_heads = r.integer({"num_attention_heads"}, 32);
  c.num_kv_heads = r.integer({"num_key_value_heads"}, c.num_heads);
  c.head_dim = r.integer({"head_dim", "attention_head_dim"}, c.num_heads ? c.hidden_size / c.num_heads : 0);
  if (r.boolean({"attention_bias"}, false)) throw Error(source + ": attention_bias is true; ringscan supports bias-free attention only");
  if (r.boolean({"mlp_bias"}, false)) throw Error(source + ": mlp_bias is true; ringscan supports bias-free MLPs only");
  if (r.boolean({"mamba_proj_bias"}, false)) throw Error(source + ": mamba_proj_bias is true; ringscan supports bias-free Mamba projections only");

  std::string pos = r.string({"position_embedding_type"}, j.contains("rope_theta") ? "rope" : "none");
  if (pos == "rope") c.rope = true;
  else if (pos != "none") throw Error(source + ": position_embedding_type \"" + pos + "\" is not supported (expected none or rope)");
  c.rope_theta = require_finite_positive(r.number({"rope_theta"}, 10000.0), "rope_theta", source);
  double partial = r.number({"partial_rotary_factor"}, 1.0);
  if (c.rope && !(partial > 0 && partial <= 1))  // written so that NaN fails too
    throw Error(source + ": partial_rotary_factor must be in (0, 1], got " + json_number_text(partial));
  c.rotary_dim = static_cast<int64_t>(std::llround(c.head_dim * partial)) / 2 * 2;

  c.max_position_embeddings = r.integer({"max_position_embeddings"}, 0);
  if (c.max_position_embeddings < 0)
    throw Error(source + ": max_position_embeddings must be >= 0, got " + std::to_string(c.max_position_embeddings));

  c.intermediate_size = r.integer({"intermediate_size"}, 0);
  std::string act = r.string({"mlp_hidden_act", "hidden_act"}, "relu2");
  if (act == "relu2") c.mlp = MlpKind::Relu2;
  else if (act == "silu" || act == "swiglu") c.mlp = MlpKind::SwiGlu;
  else throw Error(source + ": mlp_hidden_act \"" + act + "\" is not supported (expected relu2, or silu for a gated SiLU MLP)");

  c.mamba_heads = r.integer({"mamba_num_heads"}, 128);
  c.mamba_head_dim = r.integer({"mamba_head_dim"}, 64);
  c.ssm_state = r.integer({"ssm_state_size", "mamba_d_state"}, 128);
  c.n_groups = r.integer({"n_groups", "mamba_n_groups"}, 8);
  c.conv_kernel = r.integer({"conv_kernel", "mamba_d_conv"}, 4);
  c.chunk_size = r.integer({"chunk_size", "mamba_chunk_size"}, 128);
  c.conv_bias = r.boolean({"use_conv_bias", "mamba_conv_bias"}, true);
  std::string mact = r.string({"mamba_hidden_act"}, "silu");
  if (mact != "silu") throw Error(source + ": mamba_hidden_act \"" + mact + "\" is not supported (expected silu)");
  if (const Json* lim = r.find({"time_step_limit", "mamba_dt_limit"})) {
    if (!lim->is_array() || lim->size() != 2) throw Error(source + ": time_step_limit should be a pair [min, max]");
    c.dt_min_limit = static_cast<float>(json_number((*lim)[0], source + ": time_step_limit[0]"));
    c.dt_max_limit = static_cast<float>(json_number((*lim)[1], source + ": time_step_limit[1]"));
    // dt is clamped to [min, max]: min finite and >= 0, max >= min (Infinity: no upper clamp).
    if (!(std::isfinite(c.dt_min_limit) && c.dt_min_limit >= 0 && c.dt_max_limit >= c.dt_min_limit))
      throw Error(source + ": time_step_limit must be [min, max] with 0 <= min <= max and min finite, got " +
                  lim->dump());
  }

  require_positive(c.vocab_size, "vocab_size", source);
  require_positive(c.hidden_size, "hidden_size", source);
  if (c.count(LayerKind::Attention)) {
    require_positive(c.num_heads, "num_attention_heads", source);
    require_positive(c.num_kv_heads, "num_key_value_heads", source);
    require_positive(c.head_dim, "head_dim", source);
    if (c.num_heads % c.num_kv_heads != 0)
      throw Error(source + ": num_attention_heads (" + std::to_string(c.num_heads) +
                  ") must be a multiple of num_key_value_heads (" + std::to_string(c.num_kv_heads) + ")");
  }
  if (c.count(LayerKind::Mlp)) require_positive(c.intermediate_size, "intermediate_size", source);
  if (c.count(LayerKind::Mamba)) {
    require_positive(c.mamba_heads, "mamba_num_heads", source);
    require_positive(c.mamba_head_dim, "mamba_head_dim", source);
    require_positive(c.ssm_state, "ssm_state_size", source);
    require_positive(c.n_groups, "n_groups", source);
    require_positive(c.conv_kernel, "conv_kernel", source);
    require_positive(c.chunk_size, "chunk_size", source);
    if (c.mamba_heads % c.n_groups != 0)
      throw Error(source + ": mamba_num_heads (" + std::to_string(c.mamba_heads) +
                  ") must be a multiple of n_groups (" + std::to_string(c.n_groups) + ")");
  }
  return c;
}

ModelConfig load_model_config(const std::string& model_dir) {
  require_model_folder(model_dir);
  std::string path = model_dir + "/config.json";
  return parse_model_config(read_json_file(path), path);
}

Json model_config_to_json(const ModelConfig& c) {
  Json j = Json::object();
  j["architectures"] = {"NemotronHForCausalLM"};
  j["model_type"] = "nemotron_h";
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["layer_norm_epsilon"] = c.norm_eps;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["hybrid_override_pattern"] = c.pattern();
  j["num_hidden_layers"] = c.layers.size();
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["attention_bias"] = false;
  j["mlp_bias"] = false;
  j["intermediate_size"] = c.intermediate_size;
  j["mlp_hidden_act"] = c.mlp == MlpKind::Relu2 ? "relu2" : "silu";
  j["mamba_num_heads"] = c.mamba_heads;
  j["mamba_head_dim"] = c.mamba_head_dim;
  j["ssm_state_size"] = c.ssm_state;
  j["n_groups"] = c.n_groups;
  j["conv_kernel"] = c.conv_kernel;
  j["chunk_size"] = c.chunk_size;
  j["use_conv_bias"] = c.conv_bias;
  j["mamba_hidden_act"] = "silu";
  j["mamba_proj_bias"] = false;
  // Infinity is written as Python's json would (read back by parse_json_relaxed).
  j["time_step_limit"] = {c.dt_min_limit, std::isinf(c.dt_max_limit) ? Json("Infinity") : Json(c.dt_max_limit)};
  j["position_embedding_type"] = c.rope ? "rope" : "none";
  if (c.max_position_embeddings > 0) j["max_position_embeddings"] = c.max_position_embeddings;
  if (c.rope) {
    j["rope_theta"] = c.rope_theta;
    j["partial_rotary_factor"] = static_cast<double>(c.rotary_dim) / static_cast<double>(c.head_dim);
  }
  j["bos_token_id"] = 1;
  j["eos_token_id"] = 2;
  j["pad_token_id"] = 0;
  j["torch_dtype"] = "bfloat16";
  return j;
}

}  // namespace ringscan
