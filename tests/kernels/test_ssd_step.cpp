// Single-token Mamba-2 step (decode): the fast CPU kernel against the
// double-precision reference, and T steps against ssd_scan over the T tokens.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kernel_test_util.h"
#include "ssd_step.h"

namespace ringscan::kernels {
namespace {

// Each step: the state update is two fp32 roundings per element, y a sum of
// `state` fp32 products (relative error ~sqrt(N) * 6e-8 of the sum of
// |terms|), and errors carry from step to step through the state. 1e-5 of the
// scale (plus 1e-5 relative) is ~20x the measured worst case over 6 steps and
// far below a wrong group (O(1)) or a decay off by 1e-4 (~1e-4 of the scale).
constexpr double kTol = 1e-5;

struct Inputs {
  SsdShape s;
  int64_t ld_x, ld_b, ld_c;
  std::vector<float> x, dt, A, B, C;
};

Inputs make(const SsdShape& s, uint64_t seed) {
  Inputs in{s, s.heads * s.head_dim + 3, s.groups * s.state + 5, s.groups * s.state + 7, {}, {}, {}, {}, {}};
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_real_distribution<float> uni(0.f, 1.f);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto rows = [&](int64_t n, int64_t ld, int64_t w) {  // padding holds NaN: reading it would show
    std::vector<float> v(n * ld, nan);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < w; ++c) v[r * ld + c] = normal(gen);
    return v;
  };
  in.x = rows(s.len, in.ld_x, s.heads * s.head_dim);
  in.B = rows(s.len, in.ld_b, s.groups * s.state);
  in.C = rows(s.len, in.ld_c, s.groups * s.state);
  for (int64_t i = 0; i < s.len * s.heads; ++i) in.dt.push_back(0.001f + 0.5f * uni(gen) * uni(gen));
  for (int64_t h = 0; h < s.heads; ++h) in.A.push_back(-std::exp(2.7f * uni(gen)));
  return in;
}

double scale_of(const std::vector<float>& v) { return std::max(test::max_abs(v), 1e-30); }

// T single steps = ssd_scan over the T tokens from the same initial state
// (the reference scan, in double: the definition the chunked kernel meets).
TEST(SsdStep, StepsEqualTheScan) {
  const SsdShape one{1, 8, 16, 2, 32, 0};
  const int64_t T = 9, elems = one.heads * one.head_dim * one.state, w = one.heads * one.head_dim;
  const SsdShape whole{T, one.heads, one.head_dim, one.groups, one.state, 4};
  Inputs in = make(whole, 7);
  const std::vector<float> init = test::random_floats(elems, 3, -1.f, 1.f);
  std::vector<float> y_scan(T * w), final_scan(elems);
  ref::ssd_scan(whole, in.x.data(), in.ld_x, in.dt.data(), in.A.data(), in.B.data(), in.ld_b, in.C.data(), in.ld_c,
                init.data(), y_scan.data(), w, final_scan.data());
  std::vector<float> state = init, y_steps(T * w);
  float* ps = state.data();
  for (int64_t t = 0; t < T; ++t)
    cpu::ssd_step(one, in.x.data() + t * in.ld_x, in.ld_x, in.dt.data() + t * one.heads, in.A.data(),
                  in.B.data() + t * in.ld_b, in.ld_b, in.C.data() + t * in.ld_c, in.ld_c, &ps, y_steps.data() + t * w, w);
  EXPECT_TRUE(test::all_close(y_steps, y_scan, kTol * scale_of(y_scan), kTol));
  EXPECT_TRUE(test::all_close(state, final_scan, kTol * scale_of(final_scan), kTol));
}

}  // namespace
}  // namespace ringscan::kernels
