// Each stage of the chunked SSD scan on the GPU (kernels/ssd_stages.h), fp32
// and bf16 (tensor cores), against its plain-loop reference, every stage fed
// the reference's outputs of the stages before it: a fault is pinned to one
// stage, not smeared over the whole scan (test_ssd_cuda / test_ssd_mma_cuda
// check the stages together).
//
// Tolerances, per element, as multiples of `mag`: the same stage's reference
// over the absolute values of its signed inputs (x, B, C, cb, states, init;
// dt, w and the decays are positive), i.e. the sum of |terms| of each output.
//  - fp32: sums in fp32 of exact-ish products over at most `chunk` tokens or
//    `state` entries, in another order than the reference's double: a random
//    walk of roundings, ~sqrt(256) * 6e-8 = 1e-6 of mag; we allow 1e-5.
//  - bf16: each term has at most 2 operands rounded to bf16 (u = 2^-8 each;
//    C B^T: C and B; chunk state: w x and B; chunk scan: the weight
//    cb exp(cs) dt and x, or exp(cs) C and the state): |error| <= 2u mag to
//    first order; we allow 3u mag.
//  - cumsum: cs is summed in double in the same order (a fused multiply-add
//    may change the last bits: 1e-12 relative); exp(cs), w and decay are
//    doubles rounded to float: 2 ulp.
// A wrong chunk, group, head, transposed fragment or off-by-one mask is an
// error of the order of mag itself.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "ssd_cuda_test_util.h"
#include "ssd_stages.h"

namespace ringscan::kernels {
namespace {

using test::DeviceArray;
using test::DtRange;
using test::SsdInputs;

constexpr double kFp32Rel = 1e-5;
const double kBf16Rel = 3 * std::ldexp(1.0, -8);

// |got - want| <= rel * |mag| elementwise, over whole vectors.
::testing::AssertionResult within(const std::vector<float>& got, const std::vector<float>& want,
                                  const std::vector<float>& mag, double rel) {
  if (got.size() != want.size()) return ::testing::AssertionFailure() << "sizes differ";
  const std::vector<float> tol = test::scaled_tolerance(mag, rel, 1e-30);
  return test::all_within(got.data(), 0, want.data(), 0, tol.data(), 0, 1, static_cast<int64_t>(got.size()));
}

struct Case {
  SsdShape s;
  bool with_init;
};

void check_stages(const Case& c, bool bf16) {
  const SsdShape& s = c.s;
  SCOPED_TRACE(test::describe(s, c.with_init) + (bf16 ? " bf16" : " fp32"));
  const SsdInputs in = test::make_ssd_inputs(s, 3, DtRange::Realistic, 11);
  const int64_t Q = std::min(s.chunk, s.len), chunks = (s.len + Q - 1) / Q, H = s.heads;
  const int64_t PN = s.head_dim * s.state;
  const double rel = bf16 ? kBf16Rel : kFp32Rel;

  // The reference, stage by stage (and over absolute inputs, for the bounds).
  std::vector<double> cs(s.len * H);
  std::vector<float> exp_cs(s.len * H), w(s.len * H), decay(chunks * H);
  ref::ssd_chunk_cumsum(s, in.dt.data(), in.A.data(), cs.data(), exp_cs.data(), w.data(), decay.data());
  std::vector<float> cb(chunks * s.groups * Q * Q, 0.f), cb_mag = cb;
  ref::ssd_chunk_cb(s, in.B.data(), in.ld_b, in.C.data(), in.ld_c, cb.data());
  const SsdInputs a = test::absolute(in);
  ref::ssd_chunk_cb(s, a.B.data(), in.ld_b, a.C.data(), in.ld_c, cb_mag.data());
  std::vector<float> states(chunks * H * PN), states_mag = states;
  ref::ssd_chunk_state(s, in.x.data(), in.ld_x, in.B.data(), in.ld_b, w.data(), states.data());
  ref::ssd_chunk_state(s, a.x.data(), in.ld_x, a.B.data(), in.ld_b, w.data(), states_mag.data());
  std::vector<float> passed = states, passed_mag = test::absolute(states), fin(H * PN), fin_mag(H * PN);
  ref::ssd_state_passing(s, decay.data(), c.with_init ? in.init.data() : nullptr, passed.data(), fin.data());
  ref::ssd_state_passing(s, decay.data(), c.with_init ? a.init.data() : nullptr, passed_mag.data(), fin_mag.data());
  std::vector<float> y(s.len * in.ld_y, test::kSsdYSentinel), y_mag = y;
  ref::ssd_chunk_scan(s, in.x.data(), in.ld_x, in.dt.data(), in.C.data(), in.ld_c, cs.data(), exp_cs.data(),
                      cb.data(), passed.data(), c.with_init, y.data(), in.ld_y);
  const std::vector<float> acb = test::absolute(cb), apassed = test::absolute(passed);
  ref::ssd_chunk_scan(s, a.x.data(), in.ld_x, in.dt.data(), a.C.data(), in.ld_c, cs.data(), exp_cs.data(),
                      acb.data(), apassed.data(), c.with_init, y_mag.data(), in.ld_y);

  const DeviceArray<float> d_x(in.x), d_dt(in.dt), d_A(in.A), d_B(in.B), d_C(in.C), d_init(in.init);
  {  // cumsum
    DeviceArray<double> g_cs(cs.size());
    DeviceArray<float> g_exp(exp_cs.size()), g_w(w.size()), g_decay(decay.size());
    cuda::ssd_chunk_cumsum(s, d_dt.get(), d_A.get(), g_cs.get(), g_exp.get(), g_w.get(), g_decay.get());
    const std::vector<double> got_cs = g_cs.download();
    int64_t off = 0;  // doubles: within 1e-12 relative
    for (size_t i = 0; i < cs.size(); ++i) off += !(std::fabs(got_cs[i] - cs[i]) <= 1e-12 * std::fabs(cs[i]) + 1e-300);
    EXPECT_EQ(off, 0) << "cumsum: cs";
    EXPECT_TRUE(within(g_exp.download(), exp_cs, exp_cs, 2.4e-7)) << "cumsum: exp(cs)";
    EXPECT_TRUE(within(g_w.download(), w, w, 2.4e-7)) << "cumsum: w";
    EXPECT_TRUE(within(g_decay.download(), decay, decay, 2.4e-7)) << "cumsum: decay";
  }
  {  // C B^T: only the entries on or below each chunk's diagonal are written
    std::vector<bool> lower(cb.size(), false);
    for (int64_t ch = 0; ch < chunks; ++ch) {
      const int64_t q = std::min(Q, s.len - ch * Q);
      for (int64_t g = 0; g < s.groups; ++g)
        for (int64_t t = 0; t < q; ++t)
          for (int64_t u = 0; u <= t; ++u) lower[((ch * s.groups + g) * Q + t) * Q + u] = true;
    }
    DeviceArray<float> g_cb(cb.size());
    (bf16 ? cuda::ssd_chunk_cb_bf16 : cuda::ssd_chunk_cb)(s, d_B.get(), in.ld_b, d_C.get(), in.ld_c, g_cb.get(),
                                                          nullptr);
    std::vector<float> got_cb = g_cb.download();
    for (size_t i = 0; i < cb.size(); ++i)
      if (!lower[i]) got_cb[i] = cb[i];  // never written (nor read)
    EXPECT_TRUE(within(got_cb, cb, cb_mag, rel)) << "C B^T";
  }
  const DeviceArray<float> d_w(w);
  {  // chunk states
    DeviceArray<float> g_states(states.size());
    (bf16 ? cuda::ssd_chunk_state_bf16 : cuda::ssd_chunk_state)(s, d_x.get(), in.ld_x, d_B.get(), in.ld_b, d_w.get(),
                                                                g_states.get(), nullptr);
    EXPECT_TRUE(within(g_states.download(), states, states_mag, rel)) << "chunk state";
  }
  {  // state passing (fp32 either way)
    DeviceArray<float> g_states(states), g_fin(fin.size()), d_decay(decay);
    cuda::ssd_state_passing(s, d_decay.get(), c.with_init ? d_init.get() : nullptr, g_states.get(), g_fin.get());
    EXPECT_TRUE(within(g_states.download(), passed, passed_mag, kFp32Rel)) << "state passing: states";
    EXPECT_TRUE(within(g_fin.download(), fin, fin_mag, kFp32Rel)) << "state passing: final";
  }
  {  // chunk scan
    const DeviceArray<double> d_cs(cs);
    const DeviceArray<float> d_exp(exp_cs), d_cb(cb), d_passed(passed);
    DeviceArray<float> g_y(std::vector<float>(y.size(), test::kSsdYSentinel));
    (bf16 ? cuda::ssd_chunk_scan_bf16 : cuda::ssd_chunk_scan)(s, d_x.get(), in.ld_x, d_dt.get(), d_C.get(), in.ld_c,
                                                              d_cs.get(), d_exp.get(), d_cb.get(), d_passed.get(),
                                                              c.with_init, g_y.get(), in.ld_y, nullptr);
    const std::vector<float> got = g_y.download();
    EXPECT_TRUE(within(got, y, y_mag, rel)) << "chunk scan";
    EXPECT_TRUE(test::ssd_padding_untouched(in, got));
  }
}

TEST(SsdStagesCuda, EachStageMatchesItsReference) {
  const Case cases[] = {
      {{300, 24, 80, 2, 128, 256}, true},  // Nemotron 3 Nano 4B's heads (fewer), a short last chunk
      {{200, 6, 16, 3, 32, 64}, false},    // 3 groups, 4 chunks
      {{65, 4, 8, 1, 16, 64}, true},       // one token in the last chunk
      {{1, 3, 5, 1, 7, 16}, false},        // one token
  };
  for (const Case& c : cases)
    for (bool bf16 : {false, true}) check_stages(c, bf16);
}

}  // namespace
}  // namespace ringscan::kernels
