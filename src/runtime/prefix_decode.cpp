// Prefix-shared batched decoding (runtime/prefix_decode.h has the algorithm).
#include "runtime/prefix_decode.h"

#include <chrono>
#include <cmath>
#include <string>

#include "kernels/attention.h"
#include "runtime/attention_partials.h"
#include "runtime/work_progress.h"
#include "util/error.h"

namespace ringscan {

namespace k = kernels::cpu;

namespace {
double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
// Drawn-token slot of a row that drew nothing this step (still feeding its own ids).
constexpr int32_t kNoDraw = -2;
}  // namespace

PrefixSharedDecoder::PrefixSharedDecoder(Model& model, comm::Communicator& group, SequenceParallelDecodeState prefix,
                                         int max_batch, PrefixKV kv)
    : model_(model), group_(group), prefix_(std::move(prefix)), kv_(std::move(kv)), max_batch_(max_batch) {
  if (max_batch < 1) throw Error("decoder batch size must be at least 1, got " + std::to_string(max_batch));
  const size_t n = model.config().layers.size();
  if (prefix_.state.layers.size() != n)
    throw Error("the prefix state has " + std::to_string(prefix_.state.layers.size()) + " layers, the model " +
                std::to_string(n));
  if (kv_.layers.empty()) {  // views of prefix_'s own vectors (moved in above: their data stay put)
    kv_.layers.resize(n);
    for (size_t li = 0; li < n; ++li) {
      const LayerCache& lc = prefix_.state.layers[li];
      kv_.layers[li].pieces = {{lc.k.data(), lc.v.data(), lc.kv_rows}};
    }
  }
  if (kv_.layers.size() != n)
    throw Error("the prefix K/V has " + std::to_string(kv_.layers.size()) + " layers, the model " + std::to_string(n));
}

void PrefixSharedDecoder::submit(GenerationRequest r) {
  if (r.prompt.empty())
    throw Error("generation request " + std::to_string(r.id) + " has no ids of its own to append to the prefix");
  check_generation_request(r, model_.config().vocab_size);
  waiting_.push_back(std::make_unique<GenerationTrack>(std::move(r)));
}

void PrefixSharedDecoder::attend(int layer, int64_t n, const float* q, const float* kk, const float* v, float* y) {
  const ModelConfig& c = model_.config();
  const int64_t qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim, Hq = c.num_heads;
  const int P = group_.size(), me = group_.rank(), drv = driver();
  kernels::AttentionShape shape{c.num_heads, c.num_kv_heads, c.head_dim};
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));

  std::vector<float> queries(n * qd);
  if (me == drv) std::copy(q, q + n * qd, queries.begin());
  if (P > 1) {
    auto _ = group_.counter_scope(kQueryLabel);
    group_.broadcast(queries.data(), queries.size(), drv);
  }

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
  for (const PrefixKV::Piece& piece : kv_.layers[layer].pieces)
    k::attention_block_kv(shape, queries.data(), qd, n, 0, kv_.dtype, piece.k, kvd, piece.v, kvd, piece.rows, 0,
                          scale, /*causal=*/false, acc, m, l);
  // The driver: every rank's prefix partials in rank order, then each
  // request's own suffix (its new row appended first: a token sees itself).
  std::vector<float> total = merge_partials_on_driver(group_, drv, shape, n, part, kPartialLabel);
  if (me != drv) return;
  float *tacc = total.data(), *tm = tacc + n * qd, *tl = tm + n * Hq;
  std::vector<float> own(part.size());
  float *oacc = own.data(), *om = oacc + n * qd, *ol = om + n * Hq;
  k::attention_init(shape, n, oacc, om, ol);
  for (int64_t b = 0; b < n; ++b) {
    LayerCache& lc = active_[b].st.layers[layer];
    lc.k.insert(lc.k.end(), kk + b * kvd, kk + (b + 1) * kvd);
    lc.v.insert(lc.v.end(), v + b * kvd, v + (b + 1) * kvd);
    lc.kv_rows += 1;
    k::attention_block(shape, q + b * qd, qd, 1, 0, lc.k.data(), kvd, lc.v.data(), kvd, lc.kv_rows, 0, scale,
                       /*causal=*/false, oacc + b * qd, om + b * Hq, ol + b * Hq);
  }
  k::attention_merge(shape, n, oacc, om, ol, tacc, tm, tl);
  k::attention_finalize(shape, n, tacc, tl, y, qd);
}

std::vector<GenerationResult> PrefixSharedDecoder::step() {
  std::vector<GenerationResult> done;
  const ModelConfig& c = model_.config();
  const int me = group_.rank(), drv = driver();
  while (static_cast<int>(active_.size()) < max_batch_ && !waiting_.empty()) {
    Sequence s;
    s.track = std::move(waiting_.front());
    waiting_.pop_front();
    s.track->started = now_seconds();
    if (s.track->finished()) {  // max_new_tokens 0
      done.push_back(std::move(s.track->result()));
      continue;
    }
    // The fork: a copy of the prefix's Mamba states; no K/V of its own yet.
    s.st.position = prefix_.length;
    s.st.layers.resize(c.layers.size());
    if (me == drv)
      for (size_t li = 0; li < c.layers.size(); ++li)
        if (c.layers[li] == LayerKind::Mamba) {
          s.st.layers[li].conv_history = prefix_.state.layers[li].conv_history;
          s.st.layers[li].ssm_state = prefix_.state.layers[li].ssm_state;
        }
    active_.push_back(std::move(s));
  }
  const int64_t B = active_.size();
  if (B == 0) return done;

  std::vector<int32_t> drawn(B, kNoDraw);
  if (me == drv) {
    std::vector<int32_t> ids(B);
    std::vector<InferenceState*> states(B);
    std::vector<int64_t> drawing;  // rows whose next token is drawn this step
    for (int64_t b = 0; b < B; ++b) {
      Sequence& s = active_[b];
      const auto& own = s.track->request().prompt;
      ids[b] = s.fed < own.size() ? own[s.fed] : s.track->last_token();
      if (s.fed + 1 >= own.size()) drawing.push_back(b);
      states[b] = &s.st;
    }
    std::vector<float> hidden(B * c.hidden_size);
    model_.decode_step(ids.data(), B, states.data(), hidden.data(),
                       [&](int layer, int64_t n, const float* q, const float* kk, const float* v, float* y) {
                         attend(layer, n, q, kk, v, y);
                       });
    const int64_t n = drawing.size();
    if (n) {
      std::vector<float> rows(n * c.hidden_size), logits(n * c.vocab_size);
      std::vector<kernels::SamplingParams> params(n);
      std::vector<uint64_t> stream(n), step(n);
      std::vector<int32_t> got(n);
      for (int64_t i = 0; i < n; ++i) {
        const GenerationTrack& t = *active_[drawing[i]].track;
        std::copy_n(hidden.data() + drawing[i] * c.hidden_size, c.hidden_size, rows.data() + i * c.hidden_size);
        params[i] = t.request().sampling;
        stream[i] = t.request().id;
        step[i] = t.steps();
      }
      model_.logits(rows.data(), n, logits.data());
      k::sample(logits.data(), c.vocab_size, n, c.vocab_size, params.data(), stream.data(), step.data(), got.data());
      for (int64_t i = 0; i < n; ++i) drawn[drawing[i]] = got[i];
    }
  } else {
    for (size_t i = 0; i < c.layers.size(); ++i)  // the driver's decode_step attends layer by layer, in order
      if (c.layers[i] == LayerKind::Attention) attend(static_cast<int>(i), B, nullptr, nullptr, nullptr, nullptr);
  }
  if (group_.size() > 1) {
    auto _ = group_.counter_scope(kTokenLabel);
    group_.broadcast(drawn.data(), drawn.size(), drv);
  }
  report_work(static_cast<double>(B));

  std::vector<Sequence> still;
  for (int64_t b = 0; b < B; ++b) {
    Sequence& s = active_[b];
    const bool feeding = s.fed < s.track->request().prompt.size();
    if (feeding) s.fed += 1;
    if (drawn[b] != kNoDraw && s.track->accept(drawn[b])) done.push_back(std::move(s.track->result()));
    else still.push_back(std::move(s));
  }
  active_ = std::move(still);
  return done;
}

std::vector<GenerationResult> PrefixSharedDecoder::run() { return run_until_idle(*this); }

}  // namespace ringscan
