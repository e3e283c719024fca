// One decode token per sequence: each (sequence, head) task streams its
// head_dim x state block of the state once (read, update, write) while
// accumulating y; the state traffic (3.75 MiB per layer and sequence for the
// 4B model) is the cost, so tasks are spread over threads and rows are
// vectorised over the state dimension.
#include "ssd_step.h"

#include <cmath>
#include <stdexcept>

namespace ringscan::kernels::cpu {

void ssd_step(const SsdShape& s, const float* x, int64_t ld_x, const float* dt, const float* A, const float* B,
              int64_t ld_b, const float* C, int64_t ld_c, float* const* state, float* y, int64_t ld_y) {
  check_ssd_shape(s, "cpu::ssd_step");
  const int64_t P = s.head_dim, N = s.state, H = s.heads, hpg = H / s.groups;
  const int64_t tasks = s.len * H;
#pragma omp parallel for schedule(static) if (tasks * P * N > (int64_t{1} << 16))
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t b = task / H, h = task % H, g = h / hpg;
    if (!state[b]) {  // a padding row
      for (int64_t p = 0; p < P; ++p) y[b * ld_y + h * P + p] = 0.f;
      continue;
    }
    const float d = dt[b * H + h];
    // Decays below exp(-87) are far below fp32 resolution of the state's terms: flush to 0.
    const double e = static_cast<double>(d) * A[h];
    const float a = e < -87.0 ? 0.0f : static_cast<float>(std::exp(e));
    const float* xb = x + b * ld_x + h * P;
    const float* __restrict Bb = B + b * ld_b + g * N;
    const float* __restrict Cb = C + b * ld_c + g * N;
    float* __restrict S = state[b] + h * P * N;
    float* yb = y + b * ld_y + h * P;
    for (int64_t p = 0; p < P; ++p) {
      const float dx = d * xb[p];
      float* __restrict row = S + p * N;
      float acc = 0.f;
#pragma omp simd reduction(+ : acc)
      for (int64_t n = 0; n < N; ++n) {
        const float v = a * row[n] + dx * Bb[n];
        row[n] = v;
        acc += v * Cb[n];
      }
      yb[p] = acc;
    }
  }
}

}  // namespace ringscan::kernels::cpu
