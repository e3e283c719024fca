#include "backend_ops/op_case.h"

#include <cmath>
#include <string>

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

::testing::AssertionResult bf16_out_close(const std::vector<uint16_t>& got, const std::vector<float>& expect,
                                          int64_t rows, int64_t cols, int64_t ld, double atol) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < ld; ++c) {
      const size_t i = r * ld + c;
      const double e = expect[i], g = bf16_to_f32(got[i]);
      if (c >= cols ? got[i] != kBf16Sentinel : !(std::fabs(g - e) <= std::ldexp(std::fabs(e), -8) + atol))
        return ::testing::AssertionFailure() << "[" << r << ", " << c << "] = " << g << ", expected "
                                             << (c >= cols ? "the padding sentinel" : std::to_string(e));
    }
  return ::testing::AssertionSuccess();
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
    add_decode_ops(f);
    return f;
  }();
  return all;
}

}  // namespace ringscan::test::ops
