#include <gtest/gtest.h>

#include <vector>

#include "embedding.h"
#include "kernel_test_util.h"

namespace ringscan::kernels {
namespace {

// A gather with a dtype conversion that is exact (bf16/f16 -> fp32): both
// versions must agree bit for bit, and with the stored values.
TEST(Embedding, CpuMatchesReferenceExactly) {
  struct Case {
    int64_t vocab, dim, n;
  };
  for (const Case c : {Case{1, 1, 1}, Case{50, 17, 1}, Case{50, 17, 9}, Case{1000, 64, 300}}) {
    for (DType dt : test::kAllDTypes) {
      SCOPED_TRACE(testing::Message()
                   << dtype_name(dt) << " vocab " << c.vocab << " dim " << c.dim << " n " << c.n);
      const test::TestWeight table = test::random_weight(dt, c.vocab, c.dim, 7);
      std::vector<int32_t> ids(c.n);
      for (int64_t i = 0; i < c.n; ++i) ids[i] = static_cast<int32_t>((i * 7919 + 3) % c.vocab);
      ids[0] = static_cast<int32_t>(c.vocab - 1);  // last row of the table
      std::vector<float> expect(c.n * c.dim), got(c.n * c.dim, -1.f);
      ref::embedding(table.view(), ids.data(), c.n, expect.data());
      cpu::embedding(table.view(), ids.data(), c.n, got.data());
      EXPECT_TRUE(test::all_close(got, expect, 0, 0));
      for (int64_t i = 0; i < c.n; ++i)
        for (int64_t d = 0; d < c.dim; ++d)
          ASSERT_EQ(expect[i * c.dim + d], table.values[ids[i] * c.dim + d]);
    }
  }
}

}  // namespace
}  // namespace ringscan::kernels
