// The CPU engine of sharded decode (sharded_decode_engine.h): host shards,
// Model::decode_step with the attention of each layer over the group.
#include <algorithm>
#include <cmath>

#include "kernels/attention.h"
#include "runtime/attention_partials.h"
#include "runtime/decode.h"
#include "runtime/sharded_decode_engine.h"
#include "util/error.h"

namespace ringscan {

namespace k = kernels::cpu;

namespace {
struct CpuShardedSequence : ShardedDecodeEngine::Sequence {
  SequenceParallelDecodeState st;
};
CpuShardedSequence& cpu(ShardedDecodeEngine::Sequence* s) { return static_cast<CpuShardedSequence&>(*s); }
}  // namespace

std::unique_ptr<ShardedDecodeEngine::Sequence> CpuShardedDecodeEngine::adopt(SequenceParallelDecodeState st) {
  auto s = std::make_unique<CpuShardedSequence>();
  s->driver = st.driver;
  s->length = st.length;
  s->holds_last_hidden = !st.last_hidden.empty();
  s->st = std::move(st);
  return s;
}

std::unique_ptr<ShardedDecodeEngine::Sequence> CpuShardedDecodeEngine::prefill(
    comm::Communicator& group, const SequenceLayout& layout,
    const std::function<std::vector<int32_t>(const Segment&)>& ids) {
  SequenceParallelForward sp(model_, group, layout);
  sp.set_keep_decode_state(true);
  sp.run(ids);
  return adopt(sp.take_decode_state());
}

int32_t CpuShardedDecodeEngine::first_token(Sequence& seq, const kernels::SamplingParams& params, uint64_t stream,
                                            uint64_t step) {
  const int64_t V = model_.config().vocab_size;
  auto& s = cpu(&seq);
  std::vector<float> logits(V);
  model_.logits(s.st.last_hidden.data(), 1, logits.data());
  int32_t token = 0;
  k::sample(logits.data(), V, 1, V, &params, &stream, &step, &token);
  s.st.last_hidden = {};
  s.holds_last_hidden = false;
  return token;
}

void CpuShardedDecodeEngine::step(comm::Communicator& group, int driver, const int32_t* ids, int64_t n,
                                  Sequence* const* seqs, const int* target, const kernels::SamplingParams* params,
                                  const uint64_t* stream, const uint64_t* step, int32_t* out) {
  const ModelConfig& c = model_.config();
  if (group.rank() != driver) {
    // The driver's decode_step calls attend once per attention layer, in order.
    for (size_t i = 0; i < c.layers.size(); ++i)
      if (c.layers[i] == LayerKind::Attention)
        attend(group, driver, static_cast<int>(i), n, seqs, nullptr, nullptr, nullptr, nullptr, target);
    return;
  }
  std::vector<InferenceState*> states(n);
  for (int64_t b = 0; b < n; ++b) states[b] = &cpu(seqs[b]).st.state;
  std::vector<float> hidden(n * c.hidden_size), logits(n * c.vocab_size);
  model_.decode_step(ids, n, states.data(), hidden.data(),
                     [&](int layer, int64_t rows, const float* q, const float* kk, const float* v, float* y) {
                       attend(group, driver, layer, rows, seqs, q, kk, v, y, target);
                     });
  model_.logits(hidden.data(), n, logits.data());
  k::sample(logits.data(), c.vocab_size, n, c.vocab_size, params, stream, step, out);
}

void CpuShardedDecodeEngine::attend(comm::Communicator& group, int drv, int layer, int64_t n, Sequence* const* seqs,
                                    const float* q, const float* kk, const float* v, float* y, const int* target) {
  const ModelConfig& c = model_.config();
  const int64_t qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim, Hq = c.num_heads;
  const int P = group.size(), me = group.rank();

  // 1. Every rank gets the queries.
  const std::vector<float> queries = queries_from_driver(group, drv, q, n, qd, ShardedDecoder::kQueryLabel);

  // 2. Each new K/V row to the rank that stores it: one message per rank, rows in batch order.
  auto append = [&](int64_t b, const float* krow, const float* vrow) {
    LayerCache& kv = cpu(seqs[b]).st.state.layers[layer];
    kv.k.insert(kv.k.end(), krow, krow + kvd);
    kv.v.insert(kv.v.end(), vrow, vrow + kvd);
    kv.kv_rows += 1;
  };
  std::vector<std::vector<float>> outgoing(P);
  std::vector<comm::Request> sends;
  if (me == drv) {
    for (int64_t b = 0; b < n; ++b) {
      if (target[b] == me) {
        append(b, kk + b * kvd, v + b * kvd);
        continue;
      }
      auto& o = outgoing[target[b]];
      o.insert(o.end(), kk + b * kvd, kk + (b + 1) * kvd);
      o.insert(o.end(), v + b * kvd, v + (b + 1) * kvd);
    }
    auto _ = group.counter_scope(ShardedDecoder::kKvLabel);
    for (int r = 0; r < P; ++r)
      if (!outgoing[r].empty()) sends.push_back(group.isend(outgoing[r].data(), outgoing[r].size(), r));
  } else {
    int64_t mine = 0;
    for (int64_t b = 0; b < n; ++b) mine += target[b] == me;
    if (mine) {
      std::vector<float> rows(mine * 2 * kvd);
      {
        auto _ = group.counter_scope(ShardedDecoder::kKvLabel);
        group.recv(rows.data(), rows.size(), drv);
      }
      const float* p = rows.data();
      for (int64_t b = 0; b < n; ++b)
        if (target[b] == me) append(b, p, p + kvd), p += 2 * kvd;
    }
  }

  // 3. Partials of every query over this rank's shard of its document: all
  //    keys are earlier (or the token itself), so no causal mask.
  kernels::AttentionShape shape{c.num_heads, c.num_kv_heads, c.head_dim};
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  std::vector<float> part(n * (qd + 2 * Hq));  // [acc (n*qd) | m (n*Hq) | l (n*Hq)]
  float *acc = part.data(), *m = acc + n * qd, *l = m + n * Hq;
  k::attention_init(shape, n, acc, m, l);
  for (int64_t b = 0; b < n; ++b) {
    const LayerCache& kv = cpu(seqs[b]).st.state.layers[layer];
    for (int64_t j0 = 0; j0 < kv.kv_rows; j0 += kAttentionKeyBlock) {
      const int64_t lk = std::min(kAttentionKeyBlock, kv.kv_rows - j0);
      k::attention_block(shape, queries.data() + b * qd, qd, 1, 0, kv.k.data() + j0 * kvd, kvd,
                         kv.v.data() + j0 * kvd, kvd, lk, 0, scale, /*causal=*/false, acc + b * qd, m + b * Hq,
                         l + b * Hq);
    }
  }

  // 4. The driver merges every rank's partials, in rank order.
  const std::vector<float> total = merge_partials_on_driver(group, drv, shape, n, part, ShardedDecoder::kPartialLabel);
  if (me == drv) {
    k::attention_finalize(shape, n, total.data(), total.data() + n * qd + n * Hq, y, qd);
    auto _ = group.counter_scope(ShardedDecoder::kKvLabel);
    comm::wait_all(sends);
  }
}

}  // namespace ringscan
