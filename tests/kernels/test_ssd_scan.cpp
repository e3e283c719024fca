// Mamba-2 SSD scan: the chunked fp32 CPU kernel against the token-by-token
// double-precision reference, plus the identities sequence parallelism relies
// on (state correction, splitting a sequence and carrying the state).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "kernels/ssd_test_util.h"
#include "ssd_scan.h"

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

namespace ringscan::kernels {
namespace {

using test::DtRange;
using test::SsdInputs;
using test::describe;

// Tolerance of the fp32 chunked kernel against the double reference, as
// atol = kTol * max|expected| plus rtol = kTol. The kernel sums the same terms
// in a different order and in fp32 (GEMMs over up to `chunk` tokens and `state`
// entries, exponentials of fp32 differences, states carried from chunk to
// chunk), so each output carries a few fp32 roundings (eps 6e-8) of the terms
// that make it up, and terms can cancel: an output near zero can only be judged
// against the scale of the outputs, not its own size. Measured worst errors are
// below 5e-7 of the scale, the model-sized head (sums over 256 tokens and 128
// state entries) included; 1e-5 leaves 20x room for other BLAS builds and still
// fails on a wrong term (an error of the order of the scale) or on decays off
// by 1e-4 (checked by breaking the kernel's exp on purpose).
constexpr double kTol = 1e-5;

using test::SsdOutputs;
using ScanFn = test::SsdScanFn;
using CorrectionFn = void (*) RINGSCAN_SSD_STATE_CORRECTION_SIG;

// y's padding is filled with a sentinel that must survive the call.
constexpr float kYSentinel = test::kSsdYSentinel;

SsdOutputs run_scan(ScanFn scan, const SsdInputs& in, bool with_init, bool with_final = true) {
  return test::run_ssd_scan(scan, in, with_init, with_final);
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

TEST(SsdScan, ReferenceMatchesClosedFormForTwoTokens) {
  // Two tokens written out by hand, so the reference itself (and the
  // repeat-interleave head -> group mapping) is checked independently:
  //   y0 = dt0 x0 (B0.C0),  y1 = exp(dt1 A) dt0 x0 (B0.C1) + dt1 x1 (B1.C1)
  // plus init: y_t += exp(A sum_{s<=t} dt_s) H C_t.
  const SsdShape s{2, 4, 3, 2, 5, 8};
  const SsdInputs in = test::make_ssd_inputs(s, 0, DtRange::Realistic, 11);
  for (bool with_init : {false, true}) {
    const SsdOutputs got = run_scan(ref::ssd_scan, in, with_init);
    for (int64_t h = 0; h < s.heads; ++h) {
      const int64_t g = h / 2;  // heads 0,1 -> group 0; heads 2,3 -> group 1
      auto dot = [&](int64_t tb, int64_t tc) {
        double acc = 0;
        for (int64_t n = 0; n < s.state; ++n)
          acc += double(in.B[tb * in.ld_b + g * s.state + n]) * in.C[tc * in.ld_c + g * s.state + n];
        return acc;
      };
      const double dt0 = in.dt[0 * s.heads + h], dt1 = in.dt[1 * s.heads + h], a = in.A[h];
      for (int64_t p = 0; p < s.head_dim; ++p) {
        const double x0 = in.x[0 * in.ld_x + h * s.head_dim + p];
        const double x1 = in.x[1 * in.ld_x + h * s.head_dim + p];
        double y0 = dt0 * x0 * dot(0, 0);
        double y1 = std::exp(dt1 * a) * dt0 * x0 * dot(0, 1) + dt1 * x1 * dot(1, 1);
        if (with_init) {
          double hc0 = 0, hc1 = 0;
          for (int64_t n = 0; n < s.state; ++n) {
            const double hv = in.init[(h * s.head_dim + p) * s.state + n];
            hc0 += hv * in.C[0 * in.ld_c + g * s.state + n];
            hc1 += hv * in.C[1 * in.ld_c + g * s.state + n];
          }
          y0 += std::exp(a * dt0) * hc0;
          y1 += std::exp(a * (dt0 + dt1)) * hc1;
        }
        // Only the reference's final float rounding separates it from this.
        EXPECT_NEAR(got.y[0 * in.ld_y + h * s.head_dim + p], y0, 1e-6 * (1 + std::fabs(y0)));
        EXPECT_NEAR(got.y[1 * in.ld_y + h * s.head_dim + p], y1, 1e-6 * (1 + std::fabs(y1)));
      }
    }
  }
}

#if defined(__SSE__)
TEST(SsdScan, LeavesTheCallersFloatingPointModeAlone) {
  // The fast kernels flush denormals inside their threads; the calling thread
  // must get its own mode back.
  const SsdInputs in = test::make_ssd_inputs({70, 4, 6, 2, 8, 16}, 0, DtRange::Harsh, 13);
  // Compare the control bits (FTZ, DAZ, rounding, exception masks), not the
  // sticky status flags (bits 0-5) that any arithmetic may raise.
  constexpr unsigned kControl = ~0x3Fu;
  const unsigned original = _mm_getcsr();
  _mm_setcsr(original & ~0x8040u);  // a caller that keeps denormals (FTZ, DAZ off)
  const unsigned before = _mm_getcsr() & kControl;
  SsdOutputs out = run_scan(cpu::ssd_scan, in, true);
  cpu::ssd_state_correction(in.s, in.dt.data(), in.A.data(), in.C.data(), in.ld_c,
                            in.init.data(), out.y.data(), in.ld_y, out.final_state.data());
  EXPECT_EQ(_mm_getcsr() & kControl, before);
  _mm_setcsr(original);
}
#endif

TEST(SsdScan, WithoutFinalState) {
  const SsdInputs in = test::make_ssd_inputs({77, 4, 6, 2, 8, 16}, 1, DtRange::Realistic, 5);
  for (bool with_init : {false, true}) {
    const SsdOutputs want = run_scan(ref::ssd_scan, in, with_init, false);
    const SsdOutputs got = run_scan(cpu::ssd_scan, in, with_init, false);
    EXPECT_TRUE(close_y(in, got.y, want.y));
    // The same outputs as when the final state is asked for.
    EXPECT_EQ(got.y, run_scan(cpu::ssd_scan, in, with_init, true).y);
  }
}

TEST(SsdScan, EmptySequenceOnlyPassesTheStateThrough) {
  const SsdInputs in = test::make_ssd_inputs({0, 4, 6, 2, 8, 16}, 1, DtRange::Realistic, 6);
  for (ScanFn scan : {ScanFn(ref::ssd_scan), ScanFn(cpu::ssd_scan)}) {
    EXPECT_EQ(run_scan(scan, in, true).final_state, in.init);
    EXPECT_EQ(run_scan(scan, in, false).final_state, std::vector<float>(in.init.size(), 0.f));
  }
}

// Pointers to the inputs from token t0 on.
struct Slice {
  const SsdInputs& in;
  int64_t t0;
  const float* x() const { return in.x.data() + t0 * in.ld_x; }
  const float* dt() const { return in.dt.data() + t0 * in.s.heads; }
  const float* B() const { return in.B.data() + t0 * in.ld_b; }
  const float* C() const { return in.C.data() + t0 * in.ld_c; }
};

TEST(SsdScan, SplitSequenceWithCarriedStateEqualsWhole) {
  const SsdShape s{203, 6, 8, 2, 16, 16};
  const SsdInputs in = test::make_ssd_inputs(s, 2, DtRange::Realistic, 31);
  for (ScanFn scan : {ScanFn(ref::ssd_scan), ScanFn(cpu::ssd_scan)})
    for (int64_t cut : {1, 16, 50, 202}) {
      SCOPED_TRACE("cut at " + std::to_string(cut));
      const SsdOutputs whole = run_scan(scan, in, true);
      std::vector<float> y(whole.y.size(), kYSentinel), mid(in.init.size()), fin(in.init.size());
      SsdShape first = s, second = s;
      first.len = cut;
      second.len = s.len - cut;
      scan(first, in.x.data(), in.ld_x, in.dt.data(), in.A.data(), in.B.data(), in.ld_b,
           in.C.data(), in.ld_c, in.init.data(), y.data(), in.ld_y, mid.data());
      const Slice rest{in, cut};
      scan(second, rest.x(), in.ld_x, rest.dt(), in.A.data(), rest.B(), in.ld_b, rest.C(),
           in.ld_c, mid.data(), y.data() + cut * in.ld_y, in.ld_y, fin.data());
      EXPECT_TRUE(close_y(in, y, whole.y));
      EXPECT_TRUE(close_state(fin, whole.final_state));
    }
}

TEST(SsdStateCorrection, ZeroStateScanPlusCorrectionEqualsScanFromState) {
  // ssd_scan(init = H) == ssd_scan(init = 0) followed by ssd_state_correction(H),
  // for the outputs and the final state, in either implementation.
  struct Impl {
    ScanFn scan;
    CorrectionFn correct;
  };
  for (Impl impl : {Impl{ref::ssd_scan, ref::ssd_state_correction},
                    Impl{cpu::ssd_scan, cpu::ssd_state_correction}})
    test::for_each_state_correction_identity_case([&](const SsdInputs& in) {
      const SsdOutputs want = run_scan(impl.scan, in, true);
      SsdOutputs got = run_scan(impl.scan, in, false);
      impl.correct(in.s, in.dt.data(), in.A.data(), in.C.data(), in.ld_c, in.init.data(),
                   got.y.data(), in.ld_y, got.final_state.data());
      EXPECT_TRUE(close_y(in, got.y, want.y));
      EXPECT_TRUE(close_state(got.final_state, want.final_state));
      EXPECT_TRUE(padding_untouched(in, got.y));
    });
}

TEST(SsdStateCorrection, SequenceParallelProtocolEqualsSingleScan) {
  // DESIGN.md §4 on one process: cut the sequence into segments, scan each from
  // a zero state, then walk the segments in order: correct segment k with the
  // true incoming state H_k; its corrected final state is H_{k+1}.
  const SsdShape s{300, 6, 8, 3, 16, 32};
  const SsdInputs in = test::make_ssd_inputs(s, 2, DtRange::Realistic, 77);
  const SsdOutputs whole = run_scan(ref::ssd_scan, in, true);
  const int64_t cuts[] = {0, 45, 46, 190, 300};  // includes a one-token segment
  std::vector<float> y(whole.y.size(), kYSentinel);
  std::vector<float> H = in.init, local_final(in.init.size());
  for (int k = 0; k + 1 < 5; ++k) {
    SsdShape seg = s;
    seg.len = cuts[k + 1] - cuts[k];
    const Slice part{in, cuts[k]};
    float* y_seg = y.data() + cuts[k] * in.ld_y;
    cpu::ssd_scan(seg, part.x(), in.ld_x, part.dt(), in.A.data(), part.B(), in.ld_b, part.C(),
                  in.ld_c, nullptr, y_seg, in.ld_y, local_final.data());
    cpu::ssd_state_correction(seg, part.dt(), in.A.data(), part.C(), in.ld_c, H.data(), y_seg,
                              in.ld_y, local_final.data());
    H = local_final;
  }
  EXPECT_TRUE(close_y(in, y, whole.y));
  EXPECT_TRUE(close_state(H, whole.final_state));
}

}  // namespace
}  // namespace ringscan::kernels
