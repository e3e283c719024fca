// Mamba-2 SSD with its GEMM stages on the tensor cores (cuda::ssd_scan_bf16):
// what is particular to it under the op contract. Its results against the
// reference are op cases of tests/backend_ops/ops_ssd.cpp (run on every
// backend), with the tolerance ssd_bf16_scan_close (kernels/ssd_test_util.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ssd_cuda_test_util.h"
#include "ssd_scan.h"

namespace ringscan::kernels {
namespace {

using test::DeviceArray;
using test::DtRange;
using test::SsdInputs;
using test::SsdOutputs;

SsdOutputs run_bf16(const SsdInputs& in, bool with_init, const Workspace& ws = {}) {
  return test::run_cuda_ssd_scan(cuda::ssd_scan_bf16, in, with_init, true, ws);
}

// Under the op contract: scratch from a caller workspace. A workspace of 3
// chunks makes a 10-chunk scan go in 4 passes (the state carried between
// them): the same numbers as one pass, bit for bit (the same kernels on the
// same chunks); a workspace smaller than one chunk's scratch is refused.
TEST(SsdScanMmaCuda, WorkspacePassesEqualOnePass) {
  const SsdShape s{600, 6, 16, 2, 32, 64};
  const SsdInputs in = test::make_ssd_inputs(s, 3, DtRange::Realistic, 8);
  const SsdOutputs whole = run_bf16(in, true);
  const size_t three = ssd_scan_scratch(s, 3, true).bytes;
  ASSERT_EQ(ssd_scan_chunks_per_pass(s, three), 3);
  DeviceArray<uint8_t> ws(three);
  const SsdOutputs passes = run_bf16(in, true, Workspace{ws.get(), three});
  EXPECT_EQ(passes.y, whole.y);
  EXPECT_EQ(passes.final_state, whole.final_state);
  EXPECT_THROW(run_bf16(in, true, Workspace{ws.get(), 1024}), std::invalid_argument);
}

// A wrong result must fail at this tolerance: the scan of other inputs (the
// same shape, another seed) is far outside it.
TEST(SsdScanMmaCuda, ToleranceRejectsAnotherScan) {
  const SsdShape s{300, 24, 80, 2, 128, 256};
  const SsdInputs in = test::make_ssd_inputs(s, 3, DtRange::Realistic, 4);
  const SsdInputs other = test::make_ssd_inputs(s, 3, DtRange::Realistic, 5);
  EXPECT_FALSE(test::ssd_bf16_scan_close(in, true, run_bf16(other, true)));
}

}  // namespace
}  // namespace ringscan::kernels
