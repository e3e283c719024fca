#include "backend_ops/op_case.h"

namespace ringscan::test::ops {

Memory::~Memory() {
  for (void* p : owned_) b_.release(p);
}

void* Memory::bytes(size_t n) {
  void* p = b_.alloc(n);
  owned_.push_back(p);
  return p;
}

WeightView Memory::weight(const TestWeight& w) {
  const void* p = w.dtype == DType::F32 ? static_cast<const void*>(put(w.values))
                                        : static_cast<const void*>(put(w.half));
  return WeightView{w.dtype, p, w.rows, w.cols};
}

const std::vector<OpFamily>& op_families() {
  static const std::vector<OpFamily> all = [] {
    std::vector<OpFamily> f;
    add_norm_ops(f);
    add_pointwise_ops(f);
    add_sequence_ops(f);
    add_linear_ops(f);
    add_attention_ops(f);
    add_ssd_ops(f);
    add_sampling_ops(f);
    return f;
  }();
  return all;
}

}  // namespace ringscan::test::ops
