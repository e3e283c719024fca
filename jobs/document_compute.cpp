#include "jobs/document_compute.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/log_softmax.h"
#include "model/packed_forward.h"
#include "runtime/sequence_parallel.h"

namespace ringscan {

namespace {

// log p(targets[i] | position pos0 + i) for rows of final hidden states, in row
// blocks so that [rows, vocab] logits stay small.
void target_logprobs(const Model& model, const float* hidden, int64_t n, const int32_t* targets, float* out) {
  const int64_t V = model.config().vocab_size, D = model.config().hidden_size;
  const int64_t block = std::max<int64_t>(1, (32 << 20) / (V * 4));
  std::vector<float> logits;
  for (int64_t r0 = 0; r0 < n; r0 += block) {
    const int64_t nr = std::min(block, n - r0);
    logits.resize(nr * V);
    model.logits(hidden + r0 * D, nr, logits.data());
    kernels::cpu::log_softmax(logits.data(), nr, V, logits.data());
    for (int64_t i = 0; i < nr; ++i) out[r0 + i] = logits[i * V + targets[r0 + i]];
  }
}

void add_rows(const float* hidden, int64_t n, int64_t D, std::vector<double>& sum) {
  for (int64_t t = 0; t < n; ++t)
    for (int64_t d = 0; d < D; ++d) sum[d] += hidden[t * D + d];
}

}  // namespace

// The values of one document from its final hidden states [n, hidden].
DocumentValues values_from_hidden(const Model& model, const std::vector<int32_t>& ids, const float* hidden,
                                  const WantedOutputs& want) {
  const int64_t n = ids.size(), D = model.config().hidden_size;
  DocumentValues v;
  if (n == 0) return v;
  if (want.logprobs) {
    v.logprob.assign(n, std::numeric_limits<float>::quiet_NaN());
    target_logprobs(model, hidden, n - 1, ids.data() + 1, v.logprob.data() + 1);
  }
  if (want.embeddings) {
    std::vector<double> sum(D, 0.0);
    add_rows(hidden, n, D, sum);
    v.embedding_mean.resize(D);
    for (int64_t d = 0; d < D; ++d) v.embedding_mean[d] = static_cast<float>(sum[d] / n);
    v.embedding_last.assign(hidden + (n - 1) * D, hidden + n * D);
  }
  return v;
}

DocumentValues compute_document(Model& model, const std::vector<int32_t>& ids, const WantedOutputs& want) {
  std::vector<float> hidden(ids.size() * model.config().hidden_size);
  InferenceState st = model.new_state();
  model.forward(ids.data(), static_cast<int64_t>(ids.size()), st, hidden.data());
  return values_from_hidden(model, ids, hidden.data(), want);
}

std::vector<DocumentValues> compute_documents_packed(const Model& model, const std::vector<std::vector<int32_t>>& docs,
                                                     const WantedOutputs& want) {
  const int64_t D = model.config().hidden_size;
  int64_t total = 0;
  for (const auto& d : docs) total += static_cast<int64_t>(d.size());
  std::vector<float> hidden(total * D);
  forward_packed(model, docs, hidden.data());
  std::vector<DocumentValues> out;
  int64_t row = 0;
  for (const auto& d : docs) {
    out.push_back(values_from_hidden(model, d, hidden.data() + row * D, want));
    row += static_cast<int64_t>(d.size());
  }
  return out;
}

DocumentValues compute_document_sp(Model& model, comm::Communicator& group, const SequenceLayout& layout,
                                   const std::function<std::vector<int32_t>(const Segment&)>& segment_ids,
                                   const WantedOutputs& want) {
  const int64_t D = model.config().hidden_size, L = layout.length;
  // Ids of each of this rank's segments, with the next segment's first id when there is one.
  std::vector<std::vector<int32_t>> with_next;
  SequenceParallelForward runner(model, group, layout);
  auto pieces = runner.run([&](const Segment& s) {
    with_next.push_back(segment_ids(s));
    return std::vector<int32_t>(with_next.back().begin(), with_next.back().begin() + s.len);
  });

  DocumentValues v;
  const bool root = group.rank() == 0;
  if (want.logprobs) {
    // Each rank scores the targets of its segments' positions: target t + 1 from position t.
    if (root) v.logprob.assign(L, std::numeric_limits<float>::quiet_NaN());
    for (size_t i = 0; i < pieces.size(); ++i) {
      const Segment& s = pieces[i].seg;
      const int64_t scored = s.end() < L ? s.len : s.len - 1;
      std::vector<float> lp(std::max<int64_t>(scored, 0));
      if (scored > 0) target_logprobs(model, pieces[i].hidden.data(), scored, with_next[i].data() + 1, lp.data());
      if (root) std::copy(lp.begin(), lp.end(), v.logprob.begin() + s.begin + 1);
      else group.send(lp.data(), lp.size(), 0);
    }
    if (root)  // the other ranks' segments, in the order each sends them
      for (int r = 1; r < group.size(); ++r)
        for (int si : layout.segments_of(r)) {
          const Segment& s = layout.segments[si];
          const int64_t scored = s.end() < L ? s.len : s.len - 1;
          if (scored > 0) group.recv(v.logprob.data() + s.begin + 1, scored, r);
          else group.recv(v.logprob.data(), 0, r);
        }
  }
  if (want.embeddings) {
    std::vector<float> sum(D, 0.f), last(D, 0.f);
    std::vector<double> local(D, 0.0);
    for (const auto& p : pieces) {
      add_rows(p.hidden.data(), p.seg.len, D, local);
      if (p.seg.end() == L && p.seg.len > 0) std::copy(p.hidden.end() - D, p.hidden.end(), last.begin());
    }
    for (int64_t d = 0; d < D; ++d) sum[d] = static_cast<float>(local[d]);
    group.all_reduce(sum.data(), D, comm::ReduceOp::sum);
    group.all_reduce(last.data(), D, comm::ReduceOp::sum);  // only the last segment's owner holds it
    if (root) {
      v.embedding_mean.resize(D);
      for (int64_t d = 0; d < D; ++d) v.embedding_mean[d] = sum[d] / static_cast<float>(L);
      v.embedding_last = last;
    }
  }
  return v;
}

}  // namespace ringscan
