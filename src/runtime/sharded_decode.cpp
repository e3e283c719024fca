// Decoding after a sequence-parallel prefill, with the KV cache left sharded
// over the group (runtime/decode.h has the algorithm and its bytes).
#include <chrono>
#include <cmath>
#include <string>

#include "kernels/attention.h"
#include "runtime/decode.h"
#include "runtime/work_progress.h"
#include "util/error.h"

namespace ringscan {

namespace k = kernels::cpu;

ShardedDecoder::ShardedDecoder(Model& model, comm::Communicator& group, LayoutKind layout, int max_batch)
    : model_(model), group_(group), layout_(layout), max_batch_(max_batch) {
  if (max_batch < 1) throw Error("decoder batch size must be at least 1, got " + std::to_string(max_batch));
}

// The owner of the last segment, whatever the length.
int ShardedDecoder::driver() const { return make_layout(0, group_.size(), layout_).segments.back().owner; }

void ShardedDecoder::submit(GenerationRequest r) {
  check_generation_request(r, model_.config().vocab_size);
  waiting_.push_back(Waiting{std::move(r), nullptr});
}

void ShardedDecoder::submit_prefilled(GenerationRequest r, SequenceParallelDecodeState st) {
  check_generation_request(r, model_.config().vocab_size);
  const int64_t L = r.prompt.empty() ? r.prompt_length : static_cast<int64_t>(r.prompt.size());
  if (st.length != L || st.state.position != L)
    throw Error("generation request " + std::to_string(r.id) + ": its prefilled state covers " +
                std::to_string(st.length) + " positions but the prompt has " + std::to_string(L) + " ids");
  if (st.driver != driver())
    throw Error("generation request " + std::to_string(r.id) + ": prefilled with another layout than this decoder's (" +
                layout_name(layout_) + ")");
  if (group_.rank() == driver() && static_cast<int64_t>(st.last_hidden.size()) != model_.config().hidden_size)
    throw Error("generation request " + std::to_string(r.id) +
                ": its prefilled state has no last hidden row (run with set_keep_decode_state(true))");
  waiting_.push_back(Waiting{std::move(r), std::make_unique<SequenceParallelDecodeState>(std::move(st))});
}

void ShardedDecoder::admit(Waiting w, std::vector<GenerationResult>& done) {
  Sequence s;
  s.track = std::make_unique<GenerationTrack>(std::move(w.req));
  GenerationTrack& t = *s.track;
  if (t.finished()) {  // max_new_tokens 0: no prefill at all
    done.push_back(std::move(t.result()));
    return;
  }
  const int P = group_.size(), me = group_.rank(), drv = driver();
  const ModelConfig& c = model_.config();
  const GenerationRequest& req = t.request();
  SequenceLayout layout = make_layout(t.result().prompt_tokens, P, layout_);
  if (w.prefilled) {
    s.st = std::move(*w.prefilled);
  } else {
    SequenceParallelForward sp(model_, group_, layout);
    sp.set_keep_decode_state(true);
    sp.run([&](const Segment& seg) {
      if (!req.prompt.empty()) return std::vector<int32_t>(req.prompt.begin() + seg.begin, req.prompt.begin() + seg.end());
      return req.segment_ids(seg);
    });
    s.st = sp.take_decode_state();
  }
  s.shard_rows.resize(P);
  for (int r = 0; r < P; ++r) s.shard_rows[r] = layout.tokens_of(r);

  int32_t token = 0;
  if (me == drv) {
    std::vector<float> logits(c.vocab_size);
    model_.logits(s.st.last_hidden.data(), 1, logits.data());
    const uint64_t stream = req.id, step = 0;
    kernels::cpu::sample(logits.data(), c.vocab_size, 1, c.vocab_size, &req.sampling, &stream, &step, &token);
  }
  s.st.last_hidden = {};
  {
    auto _ = group_.counter_scope(kTokenLabel);
    group_.broadcast(&token, 1, drv);
  }
  report_work(1);
  if (t.accept(token)) done.push_back(std::move(t.result()));
  else active_.push_back(std::move(s));
}

void ShardedDecoder::attend(int layer, int64_t n, const float* q, const float* kk, const float* v, float* y,
                            const std::vector<int>& target) {
  const ModelConfig& c = model_.config();
  const int64_t qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim, Hq = c.num_heads;
  const int P = group_.size(), me = group_.rank(), drv = driver();

  // 1. Every rank gets the queries.
  std::vector<float> queries(n * qd);
  if (me == drv) std::copy(q, q + n * qd, queries.begin());
  {
    auto _ = group_.counter_scope(kQueryLabel);
    group_.broadcast(queries.data(), queries.size(), drv);
  }

  // 2. Each new K/V row to the rank that stores it: one message per rank, rows in batch order.
  auto append = [&](int64_t b, const float* krow, const float* vrow) {
    LayerCache& kv = active_[b].st.state.layers[layer];
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
    auto _ = group_.counter_scope(kKvLabel);
    for (int r = 0; r < P; ++r)
      if (!outgoing[r].empty()) sends.push_back(group_.isend(outgoing[r].data(), outgoing[r].size(), r));
  } else {
    int64_t mine = 0;
    for (int64_t b = 0; b < n; ++b) mine += target[b] == me;
    if (mine) {
      std::vector<float> rows(mine * 2 * kvd);
      {
        auto _ = group_.counter_scope(kKvLabel);
        group_.recv(rows.data(), rows.size(), drv);
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
    const LayerCache& kv = active_[b].st.state.layers[layer];
    for (int64_t j0 = 0; j0 < kv.kv_rows; j0 += kAttentionKeyBlock) {
      const int64_t lk = std::min(kAttentionKeyBlock, kv.kv_rows - j0);
      k::attention_block(shape, queries.data() + b * qd, qd, 1, 0, kv.k.data() + j0 * kvd, kvd,
                         kv.v.data() + j0 * kvd, kvd, lk, 0, scale, /*causal=*/false, acc + b * qd, m + b * Hq,
                         l + b * Hq);
    }
  }

  // 4. The driver merges every rank's partials, in rank order.
  if (me != drv) {
    auto _ = group_.counter_scope(kPartialLabel);
    group_.send(part.data(), part.size(), drv);
  } else {
    std::vector<float> total(part.size()), theirs(part.size());
    float *tacc = total.data(), *tm = tacc + n * qd, *tl = tm + n * Hq;
    k::attention_init(shape, n, tacc, tm, tl);
    for (int r = 0; r < P; ++r) {
      const float* src = part.data();
      if (r != me) {
        auto _ = group_.counter_scope(kPartialLabel);
        group_.recv(theirs.data(), theirs.size(), r);
        src = theirs.data();
      }
      k::attention_merge(shape, n, src, src + n * qd, src + n * qd + n * Hq, tacc, tm, tl);
    }
    k::attention_finalize(shape, n, tacc, tl, y, qd);
    auto _ = group_.counter_scope(kKvLabel);
    comm::wait_all(sends);
  }
}

std::vector<GenerationResult> ShardedDecoder::step() {
  std::vector<GenerationResult> done;
  while (static_cast<int>(active_.size()) < max_batch_ && !waiting_.empty()) {
    Waiting w = std::move(waiting_.front());
    waiting_.pop_front();
    admit(std::move(w), done);
  }
  const int64_t B = active_.size();
  if (B == 0) return done;
  const ModelConfig& c = model_.config();
  const int me = group_.rank(), drv = driver();

  // Where each new K/V row goes: the rank holding the fewest rows of that document.
  std::vector<int> target(B);
  for (int64_t b = 0; b < B; ++b) {
    const auto& rows = active_[b].shard_rows;
    target[b] = static_cast<int>(std::min_element(rows.begin(), rows.end()) - rows.begin());
  }

  std::vector<int32_t> drawn(B);
  if (me == drv) {
    std::vector<int32_t> ids(B);
    std::vector<InferenceState*> states(B);
    std::vector<kernels::SamplingParams> params(B);
    std::vector<uint64_t> stream(B), step(B);
    for (int64_t b = 0; b < B; ++b) {
      const GenerationTrack& t = *active_[b].track;
      ids[b] = t.last_token();
      states[b] = &active_[b].st.state;
      params[b] = t.request().sampling;
      stream[b] = t.request().id;
      step[b] = t.steps();
    }
    std::vector<float> hidden(B * c.hidden_size), logits(B * c.vocab_size);
    model_.decode_step(ids.data(), B, states.data(), hidden.data(),
                       [&](int layer, int64_t n, const float* q, const float* kk, const float* v, float* y) {
                         attend(layer, n, q, kk, v, y, target);
                       });
    model_.logits(hidden.data(), B, logits.data());
    kernels::cpu::sample(logits.data(), c.vocab_size, B, c.vocab_size, params.data(), stream.data(), step.data(),
                         drawn.data());
  } else {
    // The driver's decode_step calls attend once per attention layer, in order.
    for (size_t i = 0; i < c.layers.size(); ++i)
      if (c.layers[i] == LayerKind::Attention) attend(static_cast<int>(i), B, nullptr, nullptr, nullptr, nullptr, target);
  }
  {
    auto _ = group_.counter_scope(kTokenLabel);
    group_.broadcast(drawn.data(), drawn.size(), drv);
  }
  report_work(static_cast<double>(B));

  std::vector<Sequence> still;
  for (int64_t b = 0; b < B; ++b) {
    active_[b].shard_rows[target[b]] += 1;
    if (active_[b].track->accept(drawn[b])) done.push_back(std::move(active_[b].track->result()));
    else still.push_back(std::move(active_[b]));
  }
  active_ = std::move(still);
  return done;
}

std::vector<GenerationResult> ShardedDecoder::run() { return run_until_idle(*this); }

}  // namespace ringscan
