#include "model/model.h"

#include <algorithm>
#include <iostream>
#include <vector>

#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/linear.h"
#include "kernels/rmsnorm.h"
#include "util/error.h"

namespace ringscan {

namespace k = kernels::cpu;

std::unique_ptr<Model> Model::load(const std::string& dir, bool quiet) {
  auto m = from_checkpoint(load_model_config(dir), Checkpoint::open(dir));
  if (!quiet && !m->w_.unexpected.empty()) {
    std::cerr << "ringscan: warning: checkpoint " << dir << " has " << m->w_.unexpected.size()
              << " tensor(s) this model does not use, e.g. " << m->w_.unexpected.front() << "\n";
  }
  return m;
}

std::unique_ptr<Model> Model::from_checkpoint(const ModelConfig& config, Checkpoint checkpoint) {
  auto m = std::make_unique<Model>();
  m->dir_ = checkpoint.dir();
  m->cfg_ = config;
  m->ckpt_ = std::move(checkpoint);
  m->w_ = bind_weights(m->cfg_, m->ckpt_);
  // Whole chunks per block keep the SSD scan's chunking identical to one pass.
  if (m->cfg_.count(LayerKind::Mamba)) m->block_tokens_ = std::max<int64_t>(1, 2048 / m->cfg_.chunk_size) * m->cfg_.chunk_size;
  return m;
}

InferenceState Model::new_state() const {
  InferenceState st;
  st.layers.resize(cfg_.layers.size());
  return st;
}

void Model::embed(const int32_t* ids, int64_t n, float* out) const {
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= cfg_.vocab_size)
      throw Error("token id " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                  " is outside the vocabulary of " + dir_ + " (0.." + std::to_string(cfg_.vocab_size - 1) + ")");
  k::embedding(w_.embeddings, ids, n, out);
}

void Model::layer_forward(int i, float* h, int64_t n, int64_t pos0, LayerCache& cache) {
  const int64_t D = cfg_.hidden_size;
  std::vector<float> normed(n * D), out(n * D);
  const LayerWeights& L = w_.layers[i];
  k::rmsnorm(h, n, D, L.norm, cfg_.norm_eps, normed.data());
  switch (L.kind) {
    case LayerKind::Mamba: mamba_mixer(cfg_, L.mamba, normed.data(), n, cache, ws_, out.data()); break;
    case LayerKind::Attention: attention_mixer(cfg_, L.attn, normed.data(), n, pos0, cache, ws_, out.data()); break;
    case LayerKind::Mlp: mlp_mixer(cfg_, L.mlp, normed.data(), n, ws_, out.data()); break;
  }
  k::add_inplace(out.data(), n * D, h);
}

void Model::forward(const int32_t* ids, int64_t n, InferenceState& st, float* hidden_out,
                    const LayerObserver& observer) {
  const int64_t D = cfg_.hidden_size;
  if (st.layers.size() != cfg_.layers.size()) st.layers.resize(cfg_.layers.size());
  for (int64_t b0 = 0; b0 < n; b0 += block_tokens_) {
    const int64_t nb = std::min(block_tokens_, n - b0);
    const int64_t pos0 = st.position;
    float* h = hidden_out + b0 * D;
    embed(ids + b0, nb, h);
    for (size_t i = 0; i < cfg_.layers.size(); ++i) {
      layer_forward(static_cast<int>(i), h, nb, pos0, st.layers[i]);
      if (observer) observer(static_cast<int>(i), pos0, h, nb);
    }
    k::rmsnorm(h, nb, D, w_.norm_f, cfg_.norm_eps, h);
    st.position += nb;
  }
}

void Model::logits(const float* hidden, int64_t n, float* out) const {
  k::linear(hidden, cfg_.hidden_size, n, w_.lm_head, out, cfg_.vocab_size);
}

}  // namespace ringscan
