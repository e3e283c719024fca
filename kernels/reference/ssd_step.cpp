// The recurrence of ssd_step.h in double, one sequence and head at a time.
#include "ssd_step.h"

#include <cmath>
#include <stdexcept>
#include <vector>

namespace ringscan::kernels::ref {

void ssd_step(const SsdShape& s, const float* x, int64_t ld_x, const float* dt, const float* A, const float* B,
              int64_t ld_b, const float* C, int64_t ld_c, float* const* state, float* y, int64_t ld_y) {
  check_ssd_shape(s, "ref::ssd_step");
  const int64_t P = s.head_dim, N = s.state, hpg = s.heads / s.groups;
  for (int64_t b = 0; b < s.len; ++b)
    for (int64_t h = 0; h < s.heads; ++h) {
      const int64_t g = h / hpg;
      if (!state[b]) {  // a padding row
        for (int64_t p = 0; p < P; ++p) y[b * ld_y + h * P + p] = 0.f;
        continue;
      }
      const double d = dt[b * s.heads + h], a = std::exp(d * A[h]);
      float* S = state[b] + h * P * N;
      for (int64_t p = 0; p < P; ++p) {
        double acc = 0;
        for (int64_t n = 0; n < N; ++n) {
          const double v = a * S[p * N + n] + d * x[b * ld_x + h * P + p] * B[b * ld_b + g * N + n];
          S[p * N + n] = static_cast<float>(v);
          acc += v * C[b * ld_c + g * N + n];
        }
        y[b * ld_y + h * P + p] = static_cast<float>(acc);
      }
    }
}

}  // namespace ringscan::kernels::ref
