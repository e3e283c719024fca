// Mamba-2 SSD with its GEMM stages on the tensor cores (cuda::ssd_scan_bf16)
// against the double-precision reference, on the case families of the fp32
// kernel's test (test_ssd_cuda.cpp): chunk boundaries, long sequences, the
// model's head shapes, strong decay, several scratch passes.
//
// Tolerance, per output element. Each GEMM operand is rounded to bf16
// (relative error <= u = 2^-8, bf16 having 8 significant bits): on the
// intra-chunk path C and B (inside C B^T), the weight C B^T exp(cs[t] - cs[s]) dt[s], and x; on the state path w x,
// B, the chunk state H_c and exp(cs) C. So every term of an output carries at
// most 4 roundings, and to first order
//   |y_gpu - y| <= 4 u * (the same sum over |terms|),
// where the sum over |terms| is the reference scan of |x|, |B|, |C| and
// |init| (decays and dt are positive). We allow 5 u of it plus 1e-6 of
// the outputs' scale (fp32 summation). A bound on |terms| rather than on |y|
// is needed: the terms have both signs, and where they cancel the rounding
// errors do not (measured under tools/cuda_emu: up to 1.9e-2 of max|y| at
// len 1, while within the bound everywhere). A wrong group, chunk boundary,
// lost incoming state or transposed fragment gives errors of the order of the
// terms themselves and fails (the largest error measured under tools/cuda_emu
// was 0.40 of the bound); a decay off by 1e-4 is not resolved at this
// precision: the fp32 kernel's test (1e-5) covers the decay code they share.
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

// |got - want| <= kRoundings * u * mag + 1e-6 * scale elementwise, with mag
// the reference over absolute inputs and scale the outputs' largest magnitude.
constexpr double kRoundings = 5;
::testing::AssertionResult bf16_scan_close(const SsdInputs& in, bool with_init, const SsdOutputs& got) {
  const SsdOutputs want = test::run_ssd_scan(ref::ssd_scan, in, with_init, true);
  const SsdOutputs mag = test::run_ssd_scan(ref::ssd_scan, test::absolute(in), with_init, true);
  const double rel = kRoundings * std::ldexp(1.0, -8);
  const int64_t width = in.s.heads * in.s.head_dim;
  const std::vector<float> tol_y = test::scaled_tolerance(mag.y, rel, 1e-6 * test::ssd_y_scale(in, want.y));
  ::testing::AssertionResult y = test::all_within(got.y.data(), in.ld_y, want.y.data(), in.ld_y, tol_y.data(),
                                                  in.ld_y, in.s.len, width);
  if (!y) return y << " (outputs y)";
  const std::vector<float> tol_s =
      test::scaled_tolerance(mag.final_state, rel, 1e-6 * test::max_abs(want.final_state));
  ::testing::AssertionResult st = test::all_within(got.final_state.data(), 0, want.final_state.data(), 0,
                                                   tol_s.data(), 0, 1, int64_t(want.final_state.size()));
  if (!st) return st << " (final state)";
  return ::testing::AssertionSuccess();
}

void expect_bf16_matches_reference(const SsdShape& s, bool with_init, DtRange range, uint64_t seed) {
  SCOPED_TRACE(test::describe(s, with_init));
  const SsdInputs in = test::make_ssd_inputs(s, 3, range, seed);
  const SsdOutputs got = run_bf16(in, with_init);
  EXPECT_TRUE(bf16_scan_close(in, with_init, got));
  EXPECT_TRUE(test::ssd_padding_untouched(in, got.y));
}

TEST(SsdScanMmaCuda, MatchesReferenceAroundChunkBoundaries) {
  test::for_each_chunk_boundary_case({1, 16, 64, 65, 256}, expect_bf16_matches_reference);
}

TEST(SsdScanMmaCuda, MatchesReferenceOnLongSequence) {
  test::for_each_long_sequence_case(expect_bf16_matches_reference);
}

TEST(SsdScanMmaCuda, MatchesReferenceForModelSizedHeads) {
  // head_dim 80 and state 128 (not multiples of the 64-wide tiles), 12 heads
  // per group as in Nemotron 3 Nano 4B.
  for (bool with_init : {false, true})
    expect_bf16_matches_reference({300, 24, 80, 2, 128, 256}, with_init, DtRange::Realistic, 4);
}

TEST(SsdScanMmaCuda, StrongDecayStaysFiniteAndAccurate) {
  test::for_each_strong_decay_case(expect_bf16_matches_reference);
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
  EXPECT_FALSE(bf16_scan_close(in, true, run_bf16(other, true)));
}

}  // namespace
}  // namespace ringscan::kernels
