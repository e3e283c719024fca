// The CPU engine of prefix-shared decoding (prefix_decode_engine.h; the
// algorithm and its bytes in prefix_decode.h): host shards, Model::decode_step
// with the attention of each layer over the group.
#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/attention.h"
#include "runtime/attention_partials.h"
#include "runtime/prefix_decode.h"
#include "runtime/prefix_decode_engine.h"
#include "util/error.h"

namespace ringscan {

namespace k = kernels::cpu;

namespace {
struct CpuPrefix : PrefixDecodeEngine::Prefix {
  SequenceParallelDecodeState st;  // the driver's Mamba states (and st's own K/V when kv views them)
  PrefixKV kv;
};
struct CpuFork : PrefixDecodeEngine::Fork {
  InferenceState st;  // driver: the forked Mamba states and the private suffix K/V
};
const CpuPrefix& cpu(const PrefixDecodeEngine::Prefix& p) { return static_cast<const CpuPrefix&>(p); }
CpuFork& cpu(PrefixDecodeEngine::Fork* f) { return static_cast<CpuFork&>(*f); }
}  // namespace

void check_prefix_state(const ModelConfig& c, const SequenceParallelDecodeState& st, PrefixKV& kv) {
  const size_t n = c.layers.size();
  if (st.state.layers.size() != n)
    throw Error("the prefix state has " + std::to_string(st.state.layers.size()) + " layers, the model " +
                std::to_string(n));
  if (kv.layers.empty()) {  // views of st's own vectors (fp32)
    kv.dtype = DType::F32;
    kv.layers.resize(n);
    for (size_t li = 0; li < n; ++li) {
      const LayerCache& lc = st.state.layers[li];
      kv.layers[li].pieces = {{lc.k.data(), lc.v.data(), lc.kv_rows}};
    }
  }
  if (kv.layers.size() != n)
    throw Error("the prefix K/V has " + std::to_string(kv.layers.size()) + " layers, the model " + std::to_string(n));
}

std::unique_ptr<PrefixDecodeEngine::Prefix> CpuPrefixDecodeEngine::load_prefix(const comm::Communicator& group,
                                                                                SequenceParallelDecodeState st,
                                                                                PrefixKV kv) {
  auto p = std::make_unique<CpuPrefix>();
  p->driver = st.driver;
  p->length = st.length;
  p->on_driver = group.rank() == st.driver;
  p->st = std::move(st);  // moved before the views are taken: the vectors' data stay put
  p->kv = std::move(kv);
  check_prefix_state(model_.config(), p->st, p->kv);
  return p;
}

std::unique_ptr<PrefixDecodeEngine::Fork> CpuPrefixDecodeEngine::fork(const Prefix& prefix) {
  const ModelConfig& c = model_.config();
  const CpuPrefix& p = cpu(prefix);
  auto f = std::make_unique<CpuFork>();
  f->st.position = p.length;
  f->st.layers.resize(c.layers.size());
  if (!p.on_driver) return f;
  for (size_t li = 0; li < c.layers.size(); ++li)
    if (c.layers[li] == LayerKind::Mamba) {
      f->st.layers[li].conv_history = p.st.state.layers[li].conv_history;
      f->st.layers[li].ssm_state = p.st.state.layers[li].ssm_state;
    }
  return f;
}

void CpuPrefixDecodeEngine::step(comm::Communicator& group, const Prefix& prefix, const int32_t* ids, int64_t n,
                                 Fork* const* forks, const int64_t* drawing, int64_t n_draw,
                                 const kernels::SamplingParams* params, const uint64_t* stream, const uint64_t* step,
                                 int32_t* out) {
  const ModelConfig& c = model_.config();
  if (group.rank() != prefix.driver) {
    // The driver's decode_step calls attend once per attention layer, in order.
    for (size_t i = 0; i < c.layers.size(); ++i)
      if (c.layers[i] == LayerKind::Attention)
        attend(group, prefix, static_cast<int>(i), n, nullptr, nullptr, nullptr, nullptr, nullptr);
    return;
  }
  std::vector<InferenceState*> states(n);
  for (int64_t b = 0; b < n; ++b) states[b] = &cpu(forks[b]).st;
  std::vector<float> hidden(n * c.hidden_size);
  model_.decode_step(ids, n, states.data(), hidden.data(),
                     [&](int layer, int64_t rows, const float* q, const float* kk, const float* v, float* y) {
                       attend(group, prefix, layer, rows, forks, q, kk, v, y);
                     });
  if (n_draw == 0) return;
  std::vector<float> rows(n_draw * c.hidden_size), logits(n_draw * c.vocab_size);
  for (int64_t i = 0; i < n_draw; ++i)
    std::copy_n(hidden.data() + drawing[i] * c.hidden_size, c.hidden_size, rows.data() + i * c.hidden_size);
  model_.logits(rows.data(), n_draw, logits.data());
  k::sample(logits.data(), c.vocab_size, n_draw, c.vocab_size, params, stream, step, out);
}

void CpuPrefixDecodeEngine::attend(comm::Communicator& group, const Prefix& prefix, int layer, int64_t n,
                                   Fork* const* forks, const float* q, const float* kk, const float* v, float* y) {
  const ModelConfig& c = model_.config();
  const int64_t qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim, Hq = c.num_heads;
  const int me = group.rank(), drv = prefix.driver;
  kernels::AttentionShape shape{c.num_heads, c.num_kv_heads, c.head_dim};
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));

  const std::vector<float> queries = queries_from_driver(group, drv, q, n, qd, PrefixSharedDecoder::kQueryLabel);

  // All n queries over this rank's whole prefix shard in one call: the kernel
  // tiles the keys itself and loads each K/V tile once per tile of query rows,
  // so the prefix is read once per step for the batch (and one parallel region
  // per layer, not one per 512 keys: at batch 1 over 58K keys that was 10x
  // slower). All keys precede every query: no mask.
  std::vector<float> part(n * (qd + 2 * Hq));  // [acc (n*qd) | m (n*Hq) | l (n*Hq)]
  float *acc = part.data(), *m = acc + n * qd, *l = m + n * Hq;
  k::attention_init(shape, n, acc, m, l);
  // A re-sharded state's shard is several pieces (ranges of saved shard files):
  // folded one after the other into the same state, one call each.
  const PrefixKV& kv = cpu(prefix).kv;
  for (const PrefixKV::Piece& piece : kv.layers[layer].pieces)
    k::attention_block_kv(shape, queries.data(), qd, n, 0, kv.dtype, piece.k, kvd, piece.v, kvd, piece.rows, 0,
                          scale, /*causal=*/false, acc, m, l);
  // The driver: every rank's prefix partials in rank order, then each
  // request's own suffix (its new row appended first: a token sees itself).
  std::vector<float> total = merge_partials_on_driver(group, drv, shape, n, part, PrefixSharedDecoder::kPartialLabel);
  if (me != drv) return;
  float *tacc = total.data(), *tm = tacc + n * qd, *tl = tm + n * Hq;
  std::vector<float> own(part.size());
  float *oacc = own.data(), *om = oacc + n * qd, *ol = om + n * Hq;
  k::attention_init(shape, n, oacc, om, ol);
  for (int64_t b = 0; b < n; ++b) {
    LayerCache& lc = cpu(forks[b]).st.layers[layer];
    lc.k.insert(lc.k.end(), kk + b * kvd, kk + (b + 1) * kvd);
    lc.v.insert(lc.v.end(), v + b * kvd, v + (b + 1) * kvd);
    lc.kv_rows += 1;
    k::attention_block(shape, q + b * qd, qd, 1, 0, lc.k.data(), kvd, lc.v.data(), kvd, lc.kv_rows, 0, scale,
                       /*causal=*/false, oacc + b * qd, om + b * Hq, ol + b * Hq);
  }
  k::attention_merge(shape, n, oacc, om, ol, tacc, tm, tl);
  k::attention_finalize(shape, n, tacc, tl, y, qd);
}

}  // namespace ringscan
