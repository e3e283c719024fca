// Small helpers shared by the kernel tests: seeded random inputs, weights
// stored in any dtype, and element-wise closeness checks that report the worst
// element (so a failure says where and by how much).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <sstream>
#include <vector>

#include "weight_view.h"

namespace ringscan::test {

// n values uniform in [lo, hi), reproducible from seed.
inline std::vector<float> random_floats(int64_t n, uint64_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(gen);
  return v;
}

// bf16 bits of each value (round to nearest even), and back.
inline std::vector<uint16_t> to_bf16(const std::vector<float>& x) {
  std::vector<uint16_t> r(x.size());
  for (size_t i = 0; i < x.size(); ++i) r[i] = f32_to_bf16(x[i]);
  return r;
}
inline std::vector<float> from_bf16(const std::vector<uint16_t>& x) {
  std::vector<float> r(x.size());
  for (size_t i = 0; i < x.size(); ++i) r[i] = bf16_to_f32(x[i]);
  return r;
}

// A weight held in the requested dtype, plus its exact fp32 values (what the
// kernel must see after conversion), so references can use either.
struct TestWeight {
  DType dtype = DType::F32;
  int64_t rows = 0, cols = 0;
  std::vector<float> values;   // exact values represented by the storage
  std::vector<uint16_t> half;  // storage for F16 / BF16

  WeightView view() const {
    const void* p = dtype == DType::F32 ? static_cast<const void*>(values.data())
                                        : static_cast<const void*>(half.data());
    return WeightView{dtype, p, rows, cols};
  }
};

// Random weight [rows, cols] rounded to dtype.
inline TestWeight random_weight(DType dtype, int64_t rows, int64_t cols, uint64_t seed,
                                float lo = -1.f, float hi = 1.f) {
  TestWeight w;
  w.dtype = dtype;
  w.rows = rows;
  w.cols = cols;
  w.values = random_floats(rows * cols, seed, lo, hi);
  if (dtype != DType::F32) {
    w.half.resize(w.values.size());
    for (size_t i = 0; i < w.values.size(); ++i) {
      w.half[i] = dtype == DType::BF16 ? f32_to_bf16(w.values[i]) : f32_to_f16(w.values[i]);
      w.values[i] = dtype == DType::BF16 ? bf16_to_f32(w.half[i]) : f16_to_f32(w.half[i]);
    }
  }
  return w;
}

inline const DType kAllDTypes[] = {DType::F32, DType::F16, DType::BF16};

namespace detail {
// Element-wise check with allowance(r, c, expected) as the largest accepted
// |actual - expected|. NaN or inf in actual fail unless expected holds the
// same non-finite value. Reports the count and the worst element.
template <class Allowance>
::testing::AssertionResult check_close(const float* actual, int64_t ld_a, const float* expected,
                                       int64_t ld_e, int64_t rows, int64_t cols,
                                       Allowance allowance) {
  double worst_excess = 0, max_err = 0;
  int64_t bad = 0, wr = -1, wc = -1;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const double a = actual[r * ld_a + c], e = expected[r * ld_e + c];
      double err, excess;
      if (!std::isfinite(e) || !std::isfinite(a)) {
        const bool same = (std::isnan(a) && std::isnan(e)) || a == e;
        err = same ? 0 : INFINITY;
        excess = same ? 0 : INFINITY;
      } else {
        err = std::fabs(a - e);
        excess = err - allowance(r, c, e);
      }
      max_err = std::max(max_err, err);
      if (excess > 0) {
        if (wr < 0 || excess > worst_excess) {
          worst_excess = excess;
          wr = r;
          wc = c;
        }
        ++bad;
      }
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess() << "max abs error " << max_err;
  std::ostringstream os;
  os.precision(9);
  os << bad << " of " << rows * cols << " elements off; worst at [" << wr << ", " << wc
     << "]: actual " << actual[wr * ld_a + wc] << ", expected " << expected[wr * ld_e + wc]
     << ", allowed error " << allowance(wr, wc, expected[wr * ld_e + wc]);
  return ::testing::AssertionFailure() << os.str();
}
}  // namespace detail

// |actual - expected| <= atol + rtol * |expected| over a [rows, cols] matrix
// with leading dimensions ld_a / ld_e.
inline ::testing::AssertionResult all_close(const float* actual, int64_t ld_a,
                                            const float* expected, int64_t ld_e, int64_t rows,
                                            int64_t cols, double atol, double rtol) {
  return detail::check_close(
      actual, ld_a, expected, ld_e, rows, cols,
      [&](int64_t, int64_t, double e) { return atol + rtol * std::fabs(e); });
}

// |actual - expected| <= tol[r, c] (a per-element error bound, leading dimension ld_t).
inline ::testing::AssertionResult all_within(const float* actual, int64_t ld_a,
                                             const float* expected, int64_t ld_e, const float* tol,
                                             int64_t ld_t, int64_t rows, int64_t cols) {
  return detail::check_close(
      actual, ld_a, expected, ld_e, rows, cols,
      [&](int64_t r, int64_t c, double) { return double(tol[r * ld_t + c]); });
}

// Contiguous vectors of equal length.
inline ::testing::AssertionResult all_close(const std::vector<float>& actual,
                                            const std::vector<float>& expected, double atol,
                                            double rtol) {
  if (actual.size() != expected.size())
    return ::testing::AssertionFailure()
           << "sizes differ: " << actual.size() << " vs " << expected.size();
  return all_close(actual.data(), 0, expected.data(), 0, 1, static_cast<int64_t>(actual.size()),
                   atol, rtol);
}

// Columns [cols, ld) of each row must still hold `sentinel`: kernels must not
// write past the width of a strided output.
inline ::testing::AssertionResult padding_untouched(const float* p, int64_t ld, int64_t rows,
                                                    int64_t cols, float sentinel) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = cols; c < ld; ++c)
      if (std::memcmp(&p[r * ld + c], &sentinel, sizeof(float)) != 0)
        return ::testing::AssertionFailure() << "padding written at [" << r << ", " << c << "]";
  return ::testing::AssertionSuccess();
}

// Largest |v|, to scale absolute tolerances to the data.
inline double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, static_cast<double>(std::fabs(x)));
  return m;
}

}  // namespace ringscan::test
