#include "model/weights.h"

#include <set>

#include "util/error.h"

namespace ringscan {

namespace {
std::string layer_prefix(size_t i) { return "backbone.layers." + std::to_string(i) + "."; }
}  // namespace

std::vector<ExpectedTensor> expected_tensors(const ModelConfig& c) {
  const int64_t D = c.hidden_size;
  std::vector<ExpectedTensor> t;
  t.push_back({"backbone.embeddings.weight", {c.vocab_size, D}});
  for (size_t i = 0; i < c.layers.size(); ++i) {
    std::string p = layer_prefix(i);
    t.push_back({p + "norm.weight", {D}});
    switch (c.layers[i]) {
      case LayerKind::Mamba:
        t.push_back({p + "mixer.in_proj.weight", {c.in_proj_dim(), D}});
        t.push_back({p + "mixer.conv1d.weight", {c.conv_dim(), 1, c.conv_kernel}});
        if (c.conv_bias) t.push_back({p + "mixer.conv1d.bias", {c.conv_dim()}});
        t.push_back({p + "mixer.dt_bias", {c.mamba_heads}});
        t.push_back({p + "mixer.A_log", {c.mamba_heads}});
        t.push_back({p + "mixer.D", {c.mamba_heads}});
        t.push_back({p + "mixer.norm.weight", {c.d_inner()}});
        t.push_back({p + "mixer.out_proj.weight", {D, c.d_inner()}});
        break;
      case LayerKind::Attention:
        t.push_back({p + "mixer.q_proj.weight", {c.num_heads * c.head_dim, D}});
        t.push_back({p + "mixer.k_proj.weight", {c.num_kv_heads * c.head_dim, D}});
        t.push_back({p + "mixer.v_proj.weight", {c.num_kv_heads * c.head_dim, D}});
        t.push_back({p + "mixer.o_proj.weight", {D, c.num_heads * c.head_dim}});
        break;
      case LayerKind::Mlp:
        if (c.mlp == MlpKind::SwiGlu) t.push_back({p + "mixer.gate_proj.weight", {c.intermediate_size, D}});
        t.push_back({p + "mixer.up_proj.weight", {c.intermediate_size, D}});
        t.push_back({p + "mixer.down_proj.weight", {D, c.intermediate_size}});
        break;
    }
  }
  t.push_back({"backbone.norm_f.weight", {D}});
  if (!c.tie_word_embeddings) t.push_back({"lm_head.weight", {c.vocab_size, D}});
  return t;
}

ModelWeights bind_weights(const ModelConfig& c, const Checkpoint& ckpt) {
  std::set<std::string> used;
  auto get = [&](const std::string& name, const std::vector<int64_t>& shape) -> WeightView {
    const TensorEntry* e = ckpt.find(name);
    if (!e)
      throw Error("checkpoint " + ckpt.dir() + " has no tensor " + name + " (expected shape " + shape_str(shape) +
                  " for this config.json)");
    if (e->shape != shape)
      throw Error(e->file + ": tensor " + name + " has shape " + shape_str(e->shape) + ", expected " +
                  shape_str(shape) + " for this config.json");
    used.insert(name);
    int64_t rows = shape.size() >= 2 ? shape[0] : 1;
    int64_t numel = 1;
    for (auto d : shape) numel *= d;
    return WeightView{e->dtype, e->data, rows, numel / rows};
  };
  // Check all up front so the first problem reported is the first in checkpoint order.
  std::map<std::string, WeightView> views;
  for (const auto& t : expected_tensors(c)) views[t.name] = get(t.name, t.shape);

  ModelWeights w;
  w.embeddings = views["backbone.embeddings.weight"];
  for (size_t i = 0; i < c.layers.size(); ++i) {
    std::string p = layer_prefix(i);
    LayerWeights L;
    L.kind = c.layers[i];
    L.norm = views[p + "norm.weight"];
    if (L.kind == LayerKind::Mamba) {
      auto& m = L.mamba;
      m.in_proj = views[p + "mixer.in_proj.weight"];
      m.conv_w = views[p + "mixer.conv1d.weight"];
      m.conv_w.rows = c.conv_dim();
      m.conv_w.cols = c.conv_kernel;
      if (c.conv_bias) m.conv_b = views[p + "mixer.conv1d.bias"];
      m.dt_bias = views[p + "mixer.dt_bias"];
      m.A_log = views[p + "mixer.A_log"];
      m.D = views[p + "mixer.D"];
      m.norm = views[p + "mixer.norm.weight"];
      m.out_proj = views[p + "mixer.out_proj.weight"];
    } else if (L.kind == LayerKind::Attention) {
      L.attn = {views[p + "mixer.q_proj.weight"], views[p + "mixer.k_proj.weight"],
                views[p + "mixer.v_proj.weight"], views[p + "mixer.o_proj.weight"]};
    } else {
      if (c.mlp == MlpKind::SwiGlu) L.mlp.gate = views[p + "mixer.gate_proj.weight"];
      L.mlp.up = views[p + "mixer.up_proj.weight"];
      L.mlp.down = views[p + "mixer.down_proj.weight"];
    }
    w.layers.push_back(L);
  }
  w.norm_f = views["backbone.norm_f.weight"];
  w.lm_head = c.tie_word_embeddings ? w.embeddings : views["lm_head.weight"];
  for (const auto& [name, e] : ckpt.tensors())
    if (!used.count(name)) w.unexpected.push_back(name);
  return w;
}

}  // namespace ringscan
