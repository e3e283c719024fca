// Plain token-by-token Mamba-2 recurrence, exactly the formula in ssd_scan.h,
// with the state and every sum in double so it can judge the chunked fp32 path.
#include "ssd_scan.h"

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace ringscan::kernels::ref {

void ssd_scan(const SsdShape& s, const float* x, int64_t ld_x, const float* dt, const float* A,
              const float* B, int64_t ld_b, const float* C, int64_t ld_c,
              const float* init_state, float* y, int64_t ld_y, float* final_state) {
  check_ssd_shape(s, "ref::ssd_scan");
  const int64_t P = s.head_dim, N = s.state, heads_per_group = s.heads / s.groups;
  std::vector<double> S(P * N);
  for (int64_t h = 0; h < s.heads; ++h) {
    const int64_t g = h / heads_per_group;
    for (int64_t i = 0; i < P * N; ++i) S[i] = init_state ? init_state[h * P * N + i] : 0.0;
    for (int64_t t = 0; t < s.len; ++t) {
      const double d = dt[t * s.heads + h];
      const double a = std::exp(d * A[h]);
      const float* xt = x + t * ld_x + h * P;
      const float* bt = B + t * ld_b + g * N;
      const float* ct = C + t * ld_c + g * N;
      float* yt = y + t * ld_y + h * P;
      for (int64_t p = 0; p < P; ++p) {
        double acc = 0.0;
        for (int64_t n = 0; n < N; ++n) {
          double& v = S[p * N + n];
          v = a * v + d * xt[p] * bt[n];
          acc += v * ct[n];
        }
        yt[p] = static_cast<float>(acc);
      }
    }
    if (final_state)
      for (int64_t i = 0; i < P * N; ++i) final_state[h * P * N + i] = static_cast<float>(S[i]);
  }
}

void ssd_state_correction(const SsdShape& s, const float* dt, const float* A, const float* C,
                          int64_t ld_c, const float* incoming_state, float* y, int64_t ld_y,
                          float* final_state) {
  check_ssd_shape(s, "ref::ssd_state_correction");
  const int64_t P = s.head_dim, N = s.state, heads_per_group = s.heads / s.groups;
  for (int64_t h = 0; h < s.heads; ++h) {
    const int64_t g = h / heads_per_group;
    const float* H = incoming_state + h * P * N;
    double dt_sum = 0.0;
    for (int64_t t = 0; t < s.len; ++t) {
      dt_sum += dt[t * s.heads + h];
      const double decay = std::exp(static_cast<double>(A[h]) * dt_sum);
      const float* ct = C + t * ld_c + g * N;
      float* yt = y + t * ld_y + h * P;
      for (int64_t p = 0; p < P; ++p) {
        double acc = 0.0;
        for (int64_t n = 0; n < N; ++n) acc += static_cast<double>(H[p * N + n]) * ct[n];
        yt[p] = static_cast<float>(yt[p] + decay * acc);
      }
    }
    if (final_state) {
      const double decay = std::exp(static_cast<double>(A[h]) * dt_sum);
      for (int64_t i = 0; i < P * N; ++i)
        final_state[h * P * N + i] =
            static_cast<float>(final_state[h * P * N + i] + decay * H[i]);
    }
  }
}

void ssd_segment_decay(const SsdShape& s, const float* dt, const float* A, float* decay) {
  check_ssd_shape(s, "ref::ssd_segment_decay");
  for (int64_t h = 0; h < s.heads; ++h) {
    double sum = 0.0;
    for (int64_t t = 0; t < s.len; ++t) sum += dt[t * s.heads + h];
    decay[h] = static_cast<float>(std::exp(static_cast<double>(A[h]) * sum));
  }
}

}  // namespace ringscan::kernels::ref
