#include "jobs/document_compute.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/log_softmax.h"
#include "model/packed_forward.h"
#ifdef RINGSCAN_WITH_CUDA
#include "model/device_model.h"
#include "runtime/device_sequence_parallel.h"
#endif
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
    kernels::cpu::token_log_prob(logits.data(), nr, V, targets + r0, out + r0);
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

#ifdef RINGSCAN_WITH_CUDA
std::vector<DocumentValues> compute_documents_packed_on_device(DeviceModel& model,
                                                               const std::vector<std::vector<int32_t>>& docs,
                                                               const WantedOutputs& want) {
  const int64_t D = model.config().hidden_size;
  std::vector<DocumentValues> out(docs.size());
  std::vector<float> rows;
  model.forward_packed(docs, [&](size_t i, const float* d_hidden) {
    const std::vector<int32_t>& ids = docs[i];
    const int64_t n = static_cast<int64_t>(ids.size());
    DocumentValues& v = out[i];
    if (n == 0) return;
    if (want.logprobs) {
      v.logprob.assign(n, std::numeric_limits<float>::quiet_NaN());
      if (n > 1) model.target_logprobs(d_hidden, n - 1, ids.data() + 1, v.logprob.data() + 1);
    }
    if (want.embeddings) {
      rows.resize(n * D);
      device_to_host(rows.data(), d_hidden, n * D);
      std::vector<double> sum(D, 0.0);
      add_rows(rows.data(), n, D, sum);
      v.embedding_mean.resize(D);
      for (int64_t d = 0; d < D; ++d) v.embedding_mean[d] = static_cast<float>(sum[d] / n);
      v.embedding_last.assign(rows.end() - D, rows.end());
    }
  });
  return out;
}

DocumentValues compute_document_on_device(DeviceModel& model, const std::vector<int32_t>& ids,
                                          const WantedOutputs& want) {
  const int64_t n = ids.size(), D = model.config().hidden_size;
  DocumentValues v;
  if (n == 0) return v;
  if (want.logprobs) v.logprob.assign(n, std::numeric_limits<float>::quiet_NaN());
  std::vector<double> sum(want.embeddings ? D : 0, 0.0);
  std::vector<float> rows;
  DeviceSequence seq = model.new_sequence(n);
  model.forward(ids.data(), n, seq, [&](int64_t row0, int64_t nr, const float* d_hidden) {
    // Row t predicts ids[t + 1]; the document's last row predicts nothing.
    const int64_t with_target = std::min(nr, n - 1 - row0);
    if (want.logprobs && with_target > 0)
      model.target_logprobs(d_hidden, with_target, ids.data() + row0 + 1, v.logprob.data() + row0 + 1);
    if (want.embeddings) {
      rows.resize(nr * D);
      device_to_host(rows.data(), d_hidden, nr * D);
      add_rows(rows.data(), nr, D, sum);
      if (row0 + nr == n) v.embedding_last.assign(rows.end() - D, rows.end());
    }
  });
  if (want.embeddings) {
    v.embedding_mean.resize(D);
    for (int64_t d = 0; d < D; ++d) v.embedding_mean[d] = static_cast<float>(sum[d] / n);
  }
  return v;
}
#endif

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

namespace {

// One of this rank's segments as the gather below needs it, whichever engine
// holds its final hidden states.
struct ScoredPiece {
  Segment seg;
  const int32_t* targets;  // the ids after each position (the segment's ids shifted by one)
  // log p(targets[t]) for the first n positions, into out (host).
  std::function<void(int64_t n, const int32_t* targets, float* out)> logprobs;
  // The final hidden rows on the host, [seg.len, hidden]: where they are, or
  // copied into `storage` (GPU engine).
  std::function<const float*(std::vector<float>& storage)> hidden_rows;
};

// Scores and embeddings of a sequence-parallel document, complete on group rank 0.
DocumentValues gather_sp_values(comm::Communicator& group, const SequenceLayout& layout,
                                const std::vector<ScoredPiece>& pieces, int64_t D, const WantedOutputs& want) {
  const int64_t L = layout.length;
  DocumentValues v;
  const bool root = group.rank() == 0;
  if (want.logprobs) {
    // Each rank scores the targets of its segments' positions: target t + 1 from position t.
    if (root) v.logprob.assign(L, std::numeric_limits<float>::quiet_NaN());
    for (const ScoredPiece& p : pieces) {
      const Segment& s = p.seg;
      const int64_t scored = s.end() < L ? s.len : s.len - 1;
      std::vector<float> lp(std::max<int64_t>(scored, 0));
      if (scored > 0) p.logprobs(scored, p.targets, lp.data());
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
    std::vector<float> storage;
    for (const ScoredPiece& p : pieces) {
      if (p.seg.len == 0) continue;
      const float* rows = p.hidden_rows(storage);
      add_rows(rows, p.seg.len, D, local);
      if (p.seg.end() == L) std::copy(rows + (p.seg.len - 1) * D, rows + p.seg.len * D, last.begin());
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

}  // namespace

DocumentValues compute_document_sp(Model& model, comm::Communicator& group, const SequenceLayout& layout,
                                   const std::function<std::vector<int32_t>(const Segment&)>& segment_ids,
                                   const WantedOutputs& want) {
  const int64_t D = model.config().hidden_size;
  // Ids of each of this rank's segments, with the next segment's first id when there is one.
  std::vector<std::vector<int32_t>> with_next;
  SequenceParallelForward runner(model, group, layout);
  auto pieces = runner.run([&](const Segment& s) {
    with_next.push_back(segment_ids(s));
    return std::vector<int32_t>(with_next.back().begin(), with_next.back().begin() + s.len);
  });
  std::vector<ScoredPiece> scored;
  for (size_t i = 0; i < pieces.size(); ++i) {
    const float* hidden = pieces[i].hidden.data();
    scored.push_back({pieces[i].seg, with_next[i].data() + 1,
                      [&model, hidden](int64_t n, const int32_t* t, float* out) { target_logprobs(model, hidden, n, t, out); },
                      [hidden](std::vector<float>&) { return hidden; }});
  }
  return gather_sp_values(group, layout, scored, D, want);
}

#ifdef RINGSCAN_WITH_CUDA
DocumentValues compute_document_sp_on_device(DeviceModel& model, comm::Communicator& group,
                                             const SequenceLayout& layout,
                                             const std::function<std::vector<int32_t>(const Segment&)>& segment_ids,
                                             const WantedOutputs& want, comm::Communicator* ring_comm) {
  const int64_t D = model.config().hidden_size;
  std::vector<std::vector<int32_t>> with_next;
  DeviceSequenceParallelForward runner(model, group, layout, ring_comm);
  auto pieces = runner.run([&](const Segment& s) {
    with_next.push_back(segment_ids(s));
    return std::vector<int32_t>(with_next.back().begin(), with_next.back().begin() + s.len);
  });
  std::vector<ScoredPiece> scored;
  for (size_t i = 0; i < pieces.size(); ++i) {
    const float* d_hidden = pieces[i].d_hidden();
    const int64_t n = pieces[i].seg.len;
    scored.push_back({pieces[i].seg, with_next[i].data() + 1,
                      [&model, d_hidden](int64_t rows, const int32_t* t, float* out) {
                        model.target_logprobs(d_hidden, rows, t, out);
                      },
                      [d_hidden, n, D](std::vector<float>& storage) {
                        storage.resize(n * D);
                        device_to_host(storage.data(), d_hidden, n * D);
                        return static_cast<const float*>(storage.data());
                      }});
  }
  return gather_sp_values(group, layout, scored, D, want);
}
#endif

}  // namespace ringscan
