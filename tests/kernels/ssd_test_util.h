// Inputs and checks for the Mamba-2 SSD kernel tests (every backend against
// the double-precision references of kernels/reference/ssd_*.cpp).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/kernel_test_util.h"
#include "ssd_scan.h"

namespace ringscan::test {

enum class DtRange { Realistic, Harsh };

// Inputs laid out as the mixer passes them: column slices of wider rows. The
// padding columns hold NaN so that reading them would poison the output.
struct SsdInputs {
  kernels::SsdShape s;
  int64_t ld_x, ld_b, ld_c, ld_y;
  std::vector<float> x, dt, A, B, C, init;
};

inline float softplus(float v) { return v > 20.f ? v : std::log1p(std::exp(v)); }

inline SsdInputs make_ssd_inputs(const kernels::SsdShape& s, int64_t pad, DtRange range,
                                 uint64_t seed) {
  SsdInputs in;
  in.s = s;
  in.ld_x = s.heads * s.head_dim + pad;
  in.ld_b = s.groups * s.state + pad;
  in.ld_c = s.groups * s.state + 2 * pad;
  in.ld_y = s.heads * s.head_dim + pad;
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto fill = [&](std::vector<float>& v, int64_t rows, int64_t width, int64_t ld) {
    v.assign(static_cast<size_t>(rows * ld), nan);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < width; ++c) v[r * ld + c] = normal(gen);
  };
  fill(in.x, s.len, s.heads * s.head_dim, in.ld_x);
  fill(in.B, s.len, s.groups * s.state, in.ld_b);
  fill(in.C, s.len, s.groups * s.state, in.ld_c);
  // dt = softplus(raw) as in the mixer. Realistic: raw spans the softplus
  // preimage of [0.001, 0.1] (Mamba-2's dt initialisation range). Harsh: dt up
  // to 5, so dt*A reaches -80 per token and a chunk's cumulative sum goes to
  // thousands below zero: exp of a cumulative sum itself would overflow.
  const float raw_lo = range == DtRange::Realistic ? std::log(std::expm1(0.001f)) : -2.f;
  const float raw_hi = range == DtRange::Realistic ? std::log(std::expm1(0.1f)) : 5.f;
  std::uniform_real_distribution<float> raw(raw_lo, raw_hi);
  in.dt.resize(static_cast<size_t>(s.len * s.heads));
  for (auto& d : in.dt) d = softplus(raw(gen));
  std::uniform_real_distribution<float> log_a(0.f, std::log(16.f));
  in.A.resize(static_cast<size_t>(s.heads));
  for (auto& a : in.A) a = -std::exp(log_a(gen));
  in.init.resize(static_cast<size_t>(s.heads * s.head_dim * s.state));
  for (auto& v : in.init) v = normal(gen);
  return in;
}

// What a scan test fills y's padding with before the call: it must survive.
constexpr float kSsdYSentinel = -12345.f;

inline ::testing::AssertionResult ssd_padding_untouched(const SsdInputs& in,
                                                        const std::vector<float>& y) {
  return padding_untouched(y.data(), in.ld_y, in.s.len, in.s.heads * in.s.head_dim,
                           kSsdYSentinel);
}

// |actual - expected| <= tol * (max|expected| + |expected|) over y's
// [len, heads * head_dim] columns: outputs are sums of terms that can cancel,
// so one near zero is judged against the scale of all outputs.
inline ::testing::AssertionResult ssd_close_y(const SsdInputs& in, const std::vector<float>& actual,
                                              const std::vector<float>& expected, double tol) {
  const int64_t width = in.s.heads * in.s.head_dim;
  double scale = 0;
  for (int64_t t = 0; t < in.s.len; ++t)
    for (int64_t c = 0; c < width; ++c)
      scale = std::max(scale, static_cast<double>(std::fabs(expected[t * in.ld_y + c])));
  return all_close(actual.data(), in.ld_y, expected.data(), in.ld_y, in.s.len, width,
                   tol * scale, tol);
}

// The same for a state (or any contiguous array).
inline ::testing::AssertionResult ssd_close_state(const std::vector<float>& actual,
                                                  const std::vector<float>& expected, double tol) {
  return all_close(actual, expected, tol * max_abs(expected), tol);
}

inline std::string describe(const kernels::SsdShape& s, bool with_init) {
  std::ostringstream os;
  os << "len " << s.len << " heads " << s.heads << " head_dim " << s.head_dim << " groups "
     << s.groups << " state " << s.state << " chunk " << s.chunk << " init " << with_init;
  return os.str();
}

// (heads, head_dim, groups, state): one head; several heads sharing one group;
// one head per group; several groups of several heads (with odd sizes).
inline const kernels::SsdShape kSsdHeadLayouts[] = {
    {0, 1, 4, 1, 8, 0}, {0, 4, 6, 1, 5, 0}, {0, 3, 4, 3, 7, 0}, {0, 6, 5, 2, 9, 0}};

}  // namespace ringscan::test
