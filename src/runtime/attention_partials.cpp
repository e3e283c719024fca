#include "runtime/attention_partials.h"

#include <algorithm>

namespace ringscan {

namespace k = kernels::cpu;

std::vector<float> queries_from_driver(comm::Communicator& group, int driver, const float* q, int64_t n, int64_t qd,
                                       const char* label) {
  std::vector<float> queries(n * qd);
  if (group.rank() == driver) std::copy(q, q + n * qd, queries.begin());
  if (group.size() > 1) {
    auto _ = group.counter_scope(label);
    group.broadcast(queries.data(), queries.size(), driver);
  }
  return queries;
}

std::vector<float> merge_partials_on_driver(comm::Communicator& group, int driver, const kernels::AttentionShape& shape,
                                            int64_t n, const std::vector<float>& part, const char* label) {
  if (group.rank() != driver) {
    auto _ = group.counter_scope(label);
    group.send(part.data(), part.size(), driver);
    return {};
  }
  const int64_t qd = shape.q_heads * shape.head_dim, Hq = shape.q_heads;
  std::vector<float> total(part.size()), theirs(part.size());
  float *tacc = total.data(), *tm = tacc + n * qd, *tl = tm + n * Hq;
  k::attention_init(shape, n, tacc, tm, tl);
  for (int r = 0; r < group.size(); ++r) {
    const float* src = part.data();
    if (r != driver) {
      auto _ = group.counter_scope(label);
      group.recv(theirs.data(), theirs.size(), r);
      src = theirs.data();
    }
    k::attention_merge(shape, n, src, src + n * qd, src + n * qd + n * Hq, tacc, tm, tl);
  }
  return total;
}

}  // namespace ringscan
