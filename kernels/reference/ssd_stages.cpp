// The chunked SSD scan's stages in plain loops, sums in double (ssd_stages.h):
// each stage's reference, fed the same inputs as the stage under test.
#include "ssd_stages.h"

#include <algorithm>
#include <cmath>

namespace ringscan::kernels::ref {
namespace {

int64_t chunk_len(const SsdShape& s) { return std::min(s.chunk, s.len); }
int64_t chunks_of(const SsdShape& s) {
  const int64_t Q = chunk_len(s);
  return Q > 0 ? (s.len + Q - 1) / Q : 0;
}

}  // namespace

void ssd_chunk_cumsum(const SsdShape& s, const float* dt, const float* A, double* cs, float* exp_cs, float* w,
                      float* decay) {
  const int64_t Q = chunk_len(s), H = s.heads;
  for (int64_t c = 0; c < chunks_of(s); ++c) {
    const int64_t t0 = c * Q, q = std::min(Q, s.len - t0);
    for (int64_t h = 0; h < H; ++h) {
      double acc = 0;
      for (int64_t t = t0; t < t0 + q; ++t) cs[t * H + h] = acc += double(dt[t * H + h]) * A[h];
      decay[c * H + h] = static_cast<float>(std::exp(acc));
      for (int64_t t = t0; t < t0 + q; ++t) {
        exp_cs[t * H + h] = static_cast<float>(std::exp(cs[t * H + h]));
        w[t * H + h] = static_cast<float>(std::exp(acc - cs[t * H + h]) * dt[t * H + h]);
      }
    }
  }
}

void ssd_chunk_cb(const SsdShape& s, const float* B, int64_t ld_b, const float* C, int64_t ld_c, float* cb) {
  const int64_t Q = chunk_len(s), N = s.state;
  for (int64_t c = 0; c < chunks_of(s); ++c) {
    const int64_t t0 = c * Q, q = std::min(Q, s.len - t0);
    for (int64_t g = 0; g < s.groups; ++g)
      for (int64_t t = 0; t < q; ++t)
        for (int64_t u = 0; u <= t; ++u) {
          double acc = 0;
          for (int64_t n = 0; n < N; ++n)
            acc += double(C[(t0 + t) * ld_c + g * N + n]) * B[(t0 + u) * ld_b + g * N + n];
          cb[((c * s.groups + g) * Q + t) * Q + u] = static_cast<float>(acc);
        }
  }
}

void ssd_chunk_state(const SsdShape& s, const float* x, int64_t ld_x, const float* B, int64_t ld_b, const float* w,
                     float* states) {
  const int64_t Q = chunk_len(s), H = s.heads, P = s.head_dim, N = s.state, hpg = s.heads / s.groups;
  for (int64_t c = 0; c < chunks_of(s); ++c) {
    const int64_t t0 = c * Q, q = std::min(Q, s.len - t0);
    for (int64_t h = 0; h < H; ++h)
      for (int64_t p = 0; p < P; ++p)
        for (int64_t n = 0; n < N; ++n) {
          double acc = 0;
          for (int64_t t = t0; t < t0 + q; ++t)
            acc += double(w[t * H + h]) * x[t * ld_x + h * P + p] * B[t * ld_b + (h / hpg) * N + n];
          states[((c * H + h) * P + p) * N + n] = static_cast<float>(acc);
        }
  }
}

void ssd_state_passing(const SsdShape& s, const float* decay, const float* init, float* states, float* final_state) {
  const int64_t H = s.heads, PN = s.head_dim * s.state, chunks = chunks_of(s);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t e = 0; e < PN; ++e) {
      double hc = init ? init[h * PN + e] : 0.0;
      for (int64_t c = 0; c < chunks; ++c) {
        float& sc = states[(c * H + h) * PN + e];
        const double S = sc;
        sc = static_cast<float>(hc);
        hc = double(decay[c * H + h]) * hc + S;
      }
      if (final_state) final_state[h * PN + e] = static_cast<float>(hc);
    }
}

void ssd_chunk_scan(const SsdShape& s, const float* x, int64_t ld_x, const float* dt, const float* C, int64_t ld_c,
                    const double* cs, const float* exp_cs, const float* cb, const float* states, bool first_has_state,
                    float* y, int64_t ld_y) {
  const int64_t Q = chunk_len(s), H = s.heads, P = s.head_dim, N = s.state, hpg = s.heads / s.groups;
  for (int64_t c = 0; c < chunks_of(s); ++c) {
    const int64_t t0 = c * Q, q = std::min(Q, s.len - t0);
    const bool with_state = c > 0 || first_has_state;
    for (int64_t h = 0; h < H; ++h) {
      const int64_t g = h / hpg;
      const float* Hc = states + (c * H + h) * P * N;
      const float* cbc = cb + (c * s.groups + g) * Q * Q;
      for (int64_t t = 0; t < q; ++t)
        for (int64_t p = 0; p < P; ++p) {
          double acc = 0;
          for (int64_t u = 0; u <= t; ++u)
            acc += double(cbc[t * Q + u]) * std::exp(cs[(t0 + t) * H + h] - cs[(t0 + u) * H + h]) *
                   dt[(t0 + u) * H + h] * x[(t0 + u) * ld_x + h * P + p];
          if (with_state) {
            double st = 0;
            for (int64_t n = 0; n < N; ++n) st += double(C[(t0 + t) * ld_c + g * N + n]) * Hc[p * N + n];
            acc += double(exp_cs[(t0 + t) * H + h]) * st;
          }
          y[(t0 + t) * ld_y + h * P + p] = static_cast<float>(acc);
        }
    }
  }
}

}  // namespace ringscan::kernels::ref
