// Mamba-2 SSD on the GPU (cuda::ssd_scan, ssd_state_correction, ssd_step):
// what is particular to the CUDA versions (several scratch passes,
// init_state == final_state, determinism, caller workspaces, argument checks)
// and the identities sequence parallelism relies on. Their results against the
// references on the shared case lists are op cases of tests/backend_ops/ops_ssd.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "ssd_cuda_test_util.h"
#include "ssd_scan.h"
#include "ssd_step.h"

namespace ringscan::kernels {
namespace {

using test::DeviceArray;
using test::DtRange;
using test::SsdInputs;
using test::describe;
constexpr float kYSentinel = test::kSsdYSentinel;

// Tolerance against the double reference: atol = kTol * max|expected| plus
// rtol = kTol, as for the CPU kernel. The GPU sums the same terms in fp32 in
// another order (tile GEMMs accumulating up to `chunk` tokens or `state`
// entries serially per thread, exponentials of fp32-rounded double
// differences, fp32 states carried from chunk to chunk), so each output
// carries a few fp32 roundings (eps 6e-8) of terms that can cancel: an output
// near zero can only be judged against the scale of the outputs. For the
// largest sums here (256 tokens, 128 state entries, terms of order 1) a
// random-walk estimate gives ~1e-6 of the scale; 1e-5 leaves room while a
// wrong term, group or chunk boundary (errors of the order of the scale) or
// a decay off by 1e-4 still fails (checked: a host emulation of these kernels,
// same fp32 arithmetic but glibc's expf, passed every test here at 1e-6 and
// failed with the decay perturbed by 1e-4).
constexpr double kTol = 1e-5;

using DeviceInputs = test::DeviceSsdInputs;

using test::SsdOutputs;

SsdOutputs run_ref(const SsdInputs& in, bool with_init, bool with_final = true) {
  return test::run_ssd_scan(ref::ssd_scan, in, with_init, with_final);
}

SsdOutputs run_cuda(const SsdInputs& in, bool with_init, bool with_final = true) {
  return test::run_cuda_ssd_scan(cuda::ssd_scan, in, with_init, with_final);
}

::testing::AssertionResult padding_untouched(const SsdInputs& in, const std::vector<float>& y) {
  return test::ssd_padding_untouched(in, y);
}
::testing::AssertionResult close_y(const SsdInputs& in, const std::vector<float>& actual,
                                   const std::vector<float>& expected) {
  return test::ssd_close_y(in, actual, expected, kTol);
}
::testing::AssertionResult close_state(const std::vector<float>& actual,
                                       const std::vector<float>& expected) {
  return test::ssd_close_state(actual, expected, kTol);
}

void expect_cuda_matches_reference(const SsdShape& s, bool with_init, DtRange range,
                                   uint64_t seed) {
  SCOPED_TRACE(describe(s, with_init));
  const SsdInputs in = test::make_ssd_inputs(s, 3, range, seed);
  const SsdOutputs want = run_ref(in, with_init);
  const SsdOutputs got = run_cuda(in, with_init);
  EXPECT_TRUE(close_y(in, got.y, want.y));
  EXPECT_TRUE(close_state(got.final_state, want.final_state));
  EXPECT_TRUE(padding_untouched(in, got.y));
}

// ssd_scan_signal_final: the event it records marks a complete final state
// (what the sequence-parallel state scan reads from another stream) and, under
// the emulator's deferred streams, comes before the last pass's outputs (what
// that scan overlaps): a stream waiting on it sees the final state and not yet
// those outputs. Two scratch passes, both GEMM paths.
TEST(SsdScanCuda, SignalFinalMarksTheFinalStateBeforeTheLastOutputs) {
  const SsdShape s{96, 2, 8, 1, 16, 16};  // 6 chunks, 3 per pass (the workspace below)
  const SsdInputs in = test::make_ssd_inputs(s, 2, DtRange::Realistic, 77);
  const SsdOutputs want = run_ref(in, /*with_init=*/true);
  for (bool mma : {false, true}) {
    SCOPED_TRACE(mma ? "tensor cores" : "fp32");
    const DeviceInputs d(in);
    DeviceArray<float> y(std::vector<float>(static_cast<size_t>(s.len * in.ld_y), kYSentinel));
    DeviceArray<float> fin(std::vector<float>(in.init.size(), std::numeric_limits<float>::quiet_NaN()));
    DeviceArray<float> fin_seen(in.init.size()), y_seen(y.size());
    DeviceArray<char> ws(ssd_scan_scratch(s, 3, /*carry=*/true).bytes);
    cudaStream_t scan_stream, observer;
    cudaEvent_t ready;
    ASSERT_EQ(cudaStreamCreateWithFlags(&scan_stream, cudaStreamNonBlocking), cudaSuccess);
    ASSERT_EQ(cudaStreamCreateWithFlags(&observer, cudaStreamNonBlocking), cudaSuccess);
    ASSERT_EQ(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), cudaSuccess);
    cuda::ssd_scan_signal_final(s, d.x.get(), in.ld_x, d.dt.get(), d.A.get(), d.B.get(), in.ld_b, d.C.get(), in.ld_c,
                                d.init.get(), y.get(), in.ld_y, fin.get(), mma, ready, Workspace{ws.get(), ws.size()},
                                scan_stream);
    ASSERT_EQ(cudaStreamWaitEvent(observer, ready, 0), cudaSuccess);
    ASSERT_EQ(cudaMemcpyAsync(fin_seen.get(), fin.get(), fin.size() * 4, cudaMemcpyDeviceToDevice, observer), cudaSuccess);
    ASSERT_EQ(cudaMemcpyAsync(y_seen.get(), y.get(), y.size() * 4, cudaMemcpyDeviceToDevice, observer), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(observer), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(scan_stream), cudaSuccess);
    // The state the observer saw, and the outputs once the scan is done, within
    // each path's tolerance (bf16 operands: test_ssd_mma_cuda's bound).
    const SsdOutputs got{y.download(), fin_seen.download()};
    if (mma) {
      EXPECT_TRUE(test::ssd_bf16_scan_close(in, /*with_init=*/true, got));
    } else {
      EXPECT_TRUE(close_state(got.final_state, want.final_state));
      EXPECT_TRUE(close_y(in, got.y, want.y));
    }
#ifdef RINGSCAN_CUDA_EMU
    // The last pass's rows (tokens 48..95) were still the sentinel when the observer ran.
    const std::vector<float> seen = y_seen.download();
    EXPECT_EQ(seen[static_cast<size_t>(95 * in.ld_y)], kYSentinel);
    EXPECT_NE(seen[0], kYSentinel);  // the first pass's had run
#endif
    cudaEventDestroy(ready);
    cudaStreamDestroy(scan_stream);
    cudaStreamDestroy(observer);
  }
}

TEST(SsdScanCuda, SeveralScratchPassesCarryTheState) {
  // Scratch is bounded (64M floats per pass): with chunk 1 each chunk needs
  // about heads * head_dim * state = 65536 floats, so ~1000 chunks fit in a
  // pass and 2100 tokens take three, the state carried between them.
  for (bool with_init : {false, true})
    expect_cuda_matches_reference({2100, 8, 64, 2, 128, 1}, with_init, DtRange::Realistic, 17);
}

TEST(SsdScanCuda, WithoutFinalState) {
  const SsdInputs in = test::make_ssd_inputs({77, 4, 6, 2, 8, 16}, 1, DtRange::Realistic, 5);
  for (bool with_init : {false, true}) {
    const SsdOutputs want = run_ref(in, with_init, false);
    const SsdOutputs got = run_cuda(in, with_init, false);
    EXPECT_TRUE(close_y(in, got.y, want.y));
    // The kernels are deterministic (no atomics): the same y as with a final state.
    EXPECT_EQ(got.y, run_cuda(in, with_init, true).y);
  }
}

TEST(SsdScanCuda, EmptySequenceOnlyPassesTheStateThrough) {
  const SsdInputs in = test::make_ssd_inputs({0, 4, 6, 2, 8, 16}, 1, DtRange::Realistic, 6);
  EXPECT_EQ(run_cuda(in, true).final_state, in.init);
  EXPECT_EQ(run_cuda(in, false).final_state, std::vector<float>(in.init.size(), 0.f));
  // In place: nothing to do, the state stays.
  DeviceArray<float> state(in.init);
  const DeviceInputs d(in);
  cuda::ssd_scan(in.s, d.x.get(), in.ld_x, d.dt.get(), d.A.get(), d.B.get(), in.ld_b, d.C.get(),
                 in.ld_c, state.get(), nullptr, in.ld_y, state.get());
  EXPECT_EQ(state.download(), in.init);
}

TEST(SsdScanCuda, InitAndFinalStateMayBeTheSameArray) {
  // Updating the state in place gives exactly what separate arrays give, in
  // one pass and over several passes.
  for (const SsdShape s : {SsdShape{150, 6, 5, 2, 9, 16}, SsdShape{2100, 8, 64, 2, 128, 1}}) {
    SCOPED_TRACE(describe(s, true));
    const SsdInputs in = test::make_ssd_inputs(s, 2, DtRange::Realistic, 91);
    const SsdOutputs separate = run_cuda(in, true);
    const DeviceInputs d(in);
    DeviceArray<float> y(std::vector<float>(static_cast<size_t>(s.len * in.ld_y), kYSentinel));
    DeviceArray<float> state(in.init);
    cuda::ssd_scan(s, d.x.get(), in.ld_x, d.dt.get(), d.A.get(), d.B.get(), in.ld_b, d.C.get(),
                   in.ld_c, state.get(), y.get(), in.ld_y, state.get());
    EXPECT_EQ(y.download(), separate.y);
    EXPECT_EQ(state.download(), separate.final_state);
    EXPECT_TRUE(close_state(separate.final_state, run_ref(in, true).final_state));
  }
}

TEST(SsdScanCuda, SplitSequenceWithCarriedStateEqualsWhole) {
  const SsdShape s{203, 6, 8, 2, 16, 16};
  const SsdInputs in = test::make_ssd_inputs(s, 2, DtRange::Realistic, 31);
  const SsdOutputs whole = run_ref(in, true);
  const DeviceInputs d(in);
  for (int64_t cut : {1, 16, 50, 202}) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    DeviceArray<float> y(std::vector<float>(whole.y.size(), kYSentinel));
    DeviceArray<float> mid(in.init.size()), fin(in.init.size());
    SsdShape first = s, second = s;
    first.len = cut;
    second.len = s.len - cut;
    cuda::ssd_scan(first, d.x.get(), in.ld_x, d.dt.get(), d.A.get(), d.B.get(), in.ld_b,
                   d.C.get(), in.ld_c, d.init.get(), y.get(), in.ld_y, mid.get());
    cuda::ssd_scan(second, d.x.get() + cut * in.ld_x, in.ld_x, d.dt.get() + cut * s.heads,
                   d.A.get(), d.B.get() + cut * in.ld_b, in.ld_b, d.C.get() + cut * in.ld_c,
                   in.ld_c, mid.get(), y.get() + cut * in.ld_y, in.ld_y, fin.get());
    EXPECT_TRUE(close_y(in, y.download(), whole.y));
    EXPECT_TRUE(close_state(fin.download(), whole.final_state));
  }
}

TEST(SsdScanCuda, RejectsBadShapes) {
  const SsdInputs in = test::make_ssd_inputs({4, 4, 2, 2, 4, 2}, 0, DtRange::Realistic, 1);
  const DeviceInputs d(in);
  DeviceArray<float> y(in.x.size());
  for (SsdShape bad : {SsdShape{4, 4, 2, 3, 4, 2}, SsdShape{4, 4, 2, 2, 4, 0},
                       SsdShape{-1, 4, 2, 2, 4, 2}, SsdShape{4, 4, 0, 2, 4, 2}})
    EXPECT_THROW(cuda::ssd_scan(bad, d.x.get(), in.ld_x, d.dt.get(), d.A.get(), d.B.get(),
                                in.ld_b, d.C.get(), in.ld_c, nullptr, y.get(), in.ld_y, nullptr),
                 std::invalid_argument);
  // A chunk whose C B^T alone (groups * chunk^2 floats) exceeds the scratch
  // budget; rejected before any input is read.
  EXPECT_THROW(cuda::ssd_scan({20000, 4, 2, 2, 4, 10000}, d.x.get(), in.ld_x, d.dt.get(),
                              d.A.get(), d.B.get(), in.ld_b, d.C.get(), in.ld_c, nullptr, y.get(),
                              in.ld_y, nullptr),
               std::invalid_argument);
}

// ---------------------------------------------------------------------------

// Adds the correction on the device to the given outputs (final may be empty:
// none); with_ws: scratch from a caller workspace of exactly the size asked.
SsdOutputs correct_cuda(const SsdInputs& in, const SsdOutputs& base, bool with_final, bool with_ws = false) {
  const DeviceInputs d(in);
  DeviceArray<float> y(base.y);
  DeviceArray<float> fin(with_final ? base.final_state : std::vector<float>{});
  const size_t ws_bytes = with_ws ? cuda::ssd_state_correction_workspace(in.s) : 0;
  DeviceArray<uint8_t> ws(ws_bytes);
  cuda::ssd_state_correction(in.s, d.dt.get(), d.A.get(), d.C.get(), in.ld_c, d.init.get(),
                             y.get(), in.ld_y, with_final ? fin.get() : nullptr, Workspace{ws.get(), ws_bytes});
  return {y.download(), fin.download()};
}

TEST(SsdStateCorrectionCuda, RefusesTooSmallWorkspace) {
  const SsdShape s{200, 4, 8, 2, 16, 64};
  const SsdInputs in = test::make_ssd_inputs(s, 0, DtRange::Realistic, 5);
  const DeviceInputs d(in);
  DeviceArray<float> y(in.x.size());
  const size_t need = cuda::ssd_state_correction_workspace(s);
  DeviceArray<uint8_t> ws(need);
  EXPECT_THROW(cuda::ssd_state_correction(s, d.dt.get(), d.A.get(), d.C.get(), in.ld_c, d.init.get(), y.get(),
                                          in.ld_y, nullptr, Workspace{ws.get(), need - 1}),
               std::invalid_argument);
}

TEST(SsdStateCorrectionCuda, ZeroStateScanPlusCorrectionEqualsScanFromState) {
  // DESIGN.md §4's identity, all on the device: scan(init = H) ==
  // scan(init = 0) + correction(H), for the outputs and the final state.
  test::for_each_state_correction_identity_case([](const SsdInputs& in) {
    const SsdOutputs want = run_ref(in, true);
    const SsdOutputs got = correct_cuda(in, run_cuda(in, false), true);
    EXPECT_TRUE(close_y(in, got.y, want.y));
    EXPECT_TRUE(close_state(got.final_state, want.final_state));
    EXPECT_TRUE(padding_untouched(in, got.y));
  });
}

// ---------------------------------------------------------------------------

// Decode inputs: row b of x/dt/B/C is sequence b's new token (padded rows).
SsdInputs make_step_inputs(const SsdShape& s, uint64_t seed) {
  SsdInputs in = test::make_ssd_inputs(s, 3, DtRange::Realistic, seed);
  // Larger steps than prefill's realistic range, so the decay matters.
  std::mt19937_64 gen(seed + 1);
  std::uniform_real_distribution<float> uni(0.f, 1.f);
  for (auto& d : in.dt) d = 0.001f + 0.5f * uni(gen) * uni(gen);
  return in;
}

TEST(SsdStepCuda, StepsEqualTheScan) {
  // T single steps on the device = the reference scan over the T tokens.
  const SsdShape one{1, 8, 16, 2, 32, 0};
  const int64_t T = 9;
  const SsdShape whole{T, one.heads, one.head_dim, one.groups, one.state, 4};
  const SsdInputs in = make_step_inputs(whole, 7);
  const SsdOutputs want = run_ref(in, true);
  const DeviceInputs d(in);
  DeviceArray<float> state(in.init);
  DeviceArray<float*> ptr(std::vector<float*>{state.get()});
  DeviceArray<float> y(std::vector<float>(want.y.size(), kYSentinel));
  for (int64_t t = 0; t < T; ++t)
    cuda::ssd_step(one, d.x.get() + t * in.ld_x, in.ld_x, d.dt.get() + t * one.heads, d.A.get(),
                   d.B.get() + t * in.ld_b, in.ld_b, d.C.get() + t * in.ld_c, in.ld_c, ptr.get(),
                   y.get() + t * in.ld_y, in.ld_y);
  EXPECT_TRUE(close_y(in, y.download(), want.y));
  EXPECT_TRUE(close_state(state.download(), want.final_state));
}

}  // namespace
}  // namespace ringscan::kernels
