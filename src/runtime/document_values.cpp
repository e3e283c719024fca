#include "runtime/document_values.h"

#include <algorithm>
#include <limits>

namespace ringscan {

namespace {

void add_rows(const float* hidden, int64_t n, int64_t D, std::vector<double>& sum) {
  for (int64_t t = 0; t < n; ++t)
    for (int64_t d = 0; d < D; ++d) sum[d] += hidden[t * D + d];
}

constexpr float kNoTarget = std::numeric_limits<float>::quiet_NaN();

}  // namespace

DocumentValuesBuilder::DocumentValuesBuilder(const std::vector<int32_t>& ids, int64_t hidden_size,
                                             const WantedOutputs& want)
    : ids_(ids), hidden_(hidden_size), want_(want) {
  if (ids.empty()) return;  // no values at all
  if (want.logprobs) v_.logprob.assign(ids.size(), kNoTarget);
  if (want.embeddings) sum_.assign(hidden_size, 0.0);
}

void DocumentValuesBuilder::add(int64_t row0, const FinalHidden& block) {
  const int64_t n = ids_.size(), nr = block.rows(), D = hidden_;
  if (nr == 0) return;
  // Row t predicts ids[t + 1]; the document's last row predicts nothing.
  const int64_t with_target = std::min(nr, n - 1 - row0);
  if (want_.logprobs && with_target > 0)
    block.target_logprobs(0, with_target, ids_.data() + row0 + 1, v_.logprob.data() + row0 + 1);
  if (want_.embeddings) {
    const float* rows = block.host_rows(0, nr, storage_);
    add_rows(rows, nr, D, sum_);
    if (row0 + nr == n) v_.embedding_last.assign(rows + (nr - 1) * D, rows + nr * D);
  }
}

DocumentValues DocumentValuesBuilder::take() {
  const int64_t n = ids_.size();
  if (want_.embeddings && n > 0) {
    v_.embedding_mean.resize(hidden_);
    for (int64_t d = 0; d < hidden_; ++d) v_.embedding_mean[d] = static_cast<float>(sum_[d] / n);
  }
  return std::move(v_);
}

DocumentValues gather_document_values(comm::Communicator& group, const SequenceLayout& layout,
                                      const ForwardedSegments& mine,
                                      const std::vector<std::vector<int32_t>>& with_next, int64_t D,
                                      const WantedOutputs& want) {
  const int64_t L = layout.length;
  DocumentValues v;
  const bool root = group.rank() == 0;
  // Positions of a segment that predict a token: all but the sequence's last.
  auto scored = [L](const Segment& s) { return s.end() < L ? s.len : s.len - 1; };
  if (want.logprobs) {
    // Each rank scores the targets of its segments' positions: target t + 1 from position t.
    if (root) v.logprob.assign(L, kNoTarget);
    for (size_t i = 0; i < mine.size(); ++i) {
      const Segment& s = mine.segment(i);
      std::vector<float> lp(std::max<int64_t>(scored(s), 0));
      if (!lp.empty()) mine.hidden(i).target_logprobs(0, lp.size(), with_next[i].data() + 1, lp.data());
      if (root) std::copy(lp.begin(), lp.end(), v.logprob.begin() + s.begin + 1);
      else group.send(lp.data(), lp.size(), 0);
    }
    if (root)  // the other ranks' segments, in the order each sends them
      for (int r = 1; r < group.size(); ++r)
        for (int si : layout.segments_of(r)) {
          const Segment& s = layout.segments[si];
          if (scored(s) > 0) group.recv(v.logprob.data() + s.begin + 1, scored(s), r);
          else group.recv(v.logprob.data(), 0, r);
        }
  }
  if (want.embeddings) {
    std::vector<float> sum(D, 0.f), last(D, 0.f);
    std::vector<double> local(D, 0.0);
    std::vector<float> storage;
    for (size_t i = 0; i < mine.size(); ++i) {
      const Segment& s = mine.segment(i);
      if (s.len == 0) continue;
      const float* rows = mine.hidden(i).host_rows(0, s.len, storage);
      add_rows(rows, s.len, D, local);
      if (s.end() == L) std::copy(rows + (s.len - 1) * D, rows + s.len * D, last.begin());
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
