// Mamba-2 SSD scan in chunked matrix form (the "state space duality" algorithm
// of mamba_ssm's chunked scan), so that prefill time is spent in small GEMMs.
//
// For one head and a chunk of q tokens starting at t0, with cs[i] the cumulative
// sum of dt*A over the chunk (inclusive) and S (head_dim x state) the state
// entering the chunk:
//   y[i] = exp(cs[i]) S C[i]                                   (state -> output)
//        + sum_{j<=i} exp(cs[i]-cs[j]) (C[i].B[j]) dt[j] x[j]  (intra-chunk)
//   S'   = exp(cs[q-1]) S + sum_j exp(cs[q-1]-cs[j]) dt[j] x[j] B[j]^T
// In matrices, for a block of rows [r0, r1) of the chunk, both output terms are
// one GEMM:  y = [diag(exp(cs)) C | (C B^T) o L] @ [S^T ; dt x], with L the
// causal decay mask; the chunk state is one more: S^T = e S^T + B^T (w * dt x).
// C B^T depends only on the group: it is computed once per (chunk, group) and
// shared by the group's heads. Only causal differences cs[i] - cs[j] (j <= i),
// which are <= 0 for A < 0 and dt >= 0, are exponentiated, so nothing overflows
// however strong the decay.
//
// Threads: per chunk, one parallel pass builds C B^T for every group, a second
// runs the heads (the chunks of one head are sequential: that is the
// inter-chunk state passing). BLAS is called from inside the parallel region,
// where OpenBLAS (openmp build) runs single-threaded.
#include "ssd_scan.h"

#include <cblas.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#include <algorithm>
#include <bit>
#include <cmath>

#include "cpu/vec_exp.h"
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace ringscan::kernels::cpu {
namespace {

// Rows per block of the causal (lower-triangular) products: blocks of rows only
// multiply the columns up to their last row, which skips most of the zero half.
constexpr int64_t kRowBlock = 64;
// How many rows ahead strided row reads are prefetched.
constexpr int64_t kPrefetchRows = 6;
// Below about this many multiply-adds a call runs on the calling thread: waking
// threads and two barriers per chunk cost more than the work.
constexpr int64_t kParallelMinWork = int64_t{1} << 18;

// Decays far below 1 multiply into denormal floats (e.g. exp(-80) * 0.01), and
// x86 cores take a slow microcode path for every denormal operand or result
// (it cost a fifth of the whole scan, mostly in the GEMMs). Values below 1.2e-38 are far
// below fp32 resolution of the outputs, so each thread flushes them to zero
// (FTZ + DAZ) for the duration of the kernel and restores its mode afterwards.
class FlushDenormals {
 public:
#if defined(__SSE__)
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040u); }
  ~FlushDenormals() { _mm_setcsr(saved_); }

 private:
  unsigned saved_;
#endif
};


// Columns [j0, i] of row i of (C B^T) o L: m[j] = cb[j] * exp(cs[i] - cs[j]).
// The differences are taken in double (cs grows to hundreds over a chunk, where
// a float's rounding would be a visible relative error of the decay).
void masked_decay_row(const float* __restrict cb, const double* __restrict cs, int64_t j0,
                      int64_t i, float* __restrict m) {
  const double ci = cs[i];
#pragma omp simd
  for (int64_t j = j0; j <= i; ++j) m[j] = cb[j] * exp_vec(static_cast<float>(ci - cs[j]));
}

// out[k - k0] = exp(cs[k] - ref) and exp(ref - cs[k]) for k in [k0, k1).
void decay_from(const double* __restrict cs, int64_t k0, int64_t k1, double ref,
                float* __restrict out) {
#pragma omp simd
  for (int64_t k = k0; k < k1; ++k) out[k - k0] = exp_vec(static_cast<float>(cs[k] - ref));
}
void decay_to(const double* __restrict cs, int64_t k0, int64_t k1, double ref,
              float* __restrict out) {
#pragma omp simd
  for (int64_t k = k0; k < k1; ++k) out[k - k0] = exp_vec(static_cast<float>(ref - cs[k]));
}

}  // namespace

void ssd_scan(const SsdShape& s, const float* x, int64_t ld_x, const float* dt, const float* A,
              const float* B, int64_t ld_b, const float* C, int64_t ld_c,
              const float* init_state, float* y, int64_t ld_y, float* final_state) {
  check_ssd_shape(s, "cpu::ssd_scan");
  if (s.chunk <= 0) throw std::invalid_argument("cpu::ssd_scan: expected chunk > 0");
  const int64_t L = s.len, H = s.heads, P = s.head_dim, G = s.groups, N = s.state;
  const int64_t hpg = H / G, Q = std::min<int64_t>(s.chunk, std::max<int64_t>(L, 1));
  if (L == 0) {
    if (final_state) {
      if (init_state && init_state != final_state)
        std::memcpy(final_state, init_state, sizeof(float) * H * P * N);
      else if (!init_state)
        std::memset(final_state, 0, sizeof(float) * H * P * N);
    }
    return;
  }

  // Per head, the right-hand side of every GEMM that produces y, kept for the
  // whole call: rows [0, N) hold the state transposed (S^T, N x P), rows
  // [N, N + q) the chunk's dt * x. A row block of outputs is then one GEMM:
  //   y[r0:r1] = [diag(exp(cs)) C | (C B^T) o L][r0:r1] @ [S^T ; dt x]
  // and the chunk state update writes S^T in place from the rows below it.
  const int64_t W_rows = N + Q;
  std::unique_ptr<float[]> W(new float[H * W_rows * P]);
  std::unique_ptr<float[]> CB(new float[G * Q * Q]);  // C B^T of the current chunk, per group

  const bool parallel = L * H * P * (N + Q) >= kParallelMinWork;
#pragma omp parallel if (parallel)
  {
    const FlushDenormals ftz;
    std::vector<double> cs(Q);         // cumulative dt*A in double: differences get exponentiated
    std::vector<float> Aug(Q * (N + Q));  // left-hand side [e C | masked C B^T], one row block
    std::vector<float> u(Q), v(Q), w(Q);

    if (init_state) {
#pragma omp for schedule(static)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t p = 0; p < P; ++p)
          for (int64_t n = 0; n < N; ++n)
            W[h * W_rows * P + n * P + p] = init_state[(h * P + p) * N + n];
    }

    for (int64_t c0 = 0; c0 < L; c0 += Q) {
      const int64_t q = std::min(Q, L - c0);
      const int64_t row_blocks = (q + kRowBlock - 1) / kRowBlock;
      // Only a state from init_state or an earlier chunk contributes; without one
      // the first chunk's GEMMs skip the state rows and overwrite it.
      const bool has_state = init_state != nullptr || c0 > 0;
      const int64_t k0 = has_state ? 0 : N;  // first used column of Aug / row of W

      // Causal rows of C B^T: block [r0, r1) needs columns [0, r1) only.
#pragma omp for collapse(2) schedule(dynamic)
      for (int64_t g = 0; g < G; ++g)
        for (int64_t b = 0; b < row_blocks; ++b) {
          const int64_t r0 = b * kRowBlock, r1 = std::min(q, r0 + kRowBlock);
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, r1, N, 1.0f,
                      C + (c0 + r0) * ld_c + g * N, ld_c, B + c0 * ld_b + g * N, ld_b, 0.0f,
                      CB.get() + g * Q * Q + r0 * Q, Q);
        }

#pragma omp for schedule(dynamic)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t g = h / hpg;
        const float* cb = CB.get() + g * Q * Q;
        const float* Cg = C + c0 * ld_c + g * N;
        const float* Bg = B + c0 * ld_b + g * N;
        float* Wh = W.get() + h * W_rows * P;  // S^T, then dt x
        float* Xdt = Wh + N * P;
        float* yc = y + c0 * ld_y + h * P;

        // dt*A <= 0 (A < 0, dt >= 0) makes cs non-increasing; the rank-one
        // split of the decay below relies on that and is skipped otherwise.
        bool monotone = true;
        double acc = 0.0;
        for (int64_t i = 0; i < q; ++i) {
          const float d = dt[(c0 + i) * H + h];
          const double step = static_cast<double>(d) * A[h];
          monotone = monotone && step <= 0.0;
          acc += step;
          cs[i] = acc;
          const float* xi = x + (c0 + i) * ld_x + h * P;
          // Rows of x are far apart (one head's slice of a wide row): without a
          // prefetch each row waits for memory.
          if (i + kPrefetchRows < q)
            for (int64_t p = 0; p < P; p += 16) __builtin_prefetch(xi + kPrefetchRows * ld_x + p);
          float* xd = Xdt + i * P;
          for (int64_t p = 0; p < P; ++p) xd[p] = d * xi[p];
        }

        for (int64_t b = 0; b < row_blocks; ++b) {
          const int64_t r0 = b * kRowBlock, r1 = std::min(q, r0 + kRowBlock);
          // Below the diagonal block, exp(cs_i - cs_j) = u_i v_j with
          // u_i = exp(cs_i - cs_r0), v_j = exp(cs_r0 - cs_j), both <= 1 when cs
          // is non-increasing: no overflow, and far fewer exponentials.
          if (monotone) {
            decay_from(cs.data(), r0, r1, cs[r0], u.data());
            decay_to(cs.data(), 0, r0, cs[r0], v.data());
          }
          for (int64_t i = r0; i < r1; ++i) {
            float* ai = Aug.data() + (i - r0) * (N + Q);
            if (has_state) {  // state -> output: exp(cs_i) C_i
              const float e = exp_vec(static_cast<float>(cs[i]));
              const float* ci = Cg + i * ld_c;
              if (i + kPrefetchRows < q)
                for (int64_t n = 0; n < N; n += 16) __builtin_prefetch(ci + kPrefetchRows * ld_c + n);
              for (int64_t n = 0; n < N; ++n) ai[n] = e * ci[n];
            }
            float* mi = ai + N;
            const float* cbi = cb + i * Q;
            if (monotone) {
              const float ui = u[i - r0];
              for (int64_t j = 0; j < r0; ++j) mi[j] = cbi[j] * (ui * v[j]);
              masked_decay_row(cbi, cs.data(), r0, i, mi);
            } else {
              masked_decay_row(cbi, cs.data(), 0, i, mi);
            }
            for (int64_t j = i + 1; j < r1; ++j) mi[j] = 0.0f;
          }
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r1 - r0, P, N + r1 - k0, 1.0f,
                      Aug.data() + k0, N + Q, Wh + k0 * P, P, 0.0f, yc + r0 * ld_y, ld_y);
        }

        // Chunk state: S^T = exp(cs_end) S^T + B^T (decay_to_end * dt x).
        const double cs_end = cs[q - 1];
        decay_to(cs.data(), 0, q, cs_end, w.data());
        for (int64_t j = 0; j < q; ++j) {
          float* xd = Xdt + j * P;
          for (int64_t p = 0; p < P; ++p) xd[p] *= w[j];
        }
        const float decay = has_state ? exp_vec(static_cast<float>(cs_end)) : 0.0f;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, P, q, 1.0f, Bg, ld_b, Xdt, P,
                    decay, Wh, P);
      }
    }

    if (final_state) {
#pragma omp for schedule(static)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t p = 0; p < P; ++p)
          for (int64_t n = 0; n < N; ++n)
            final_state[(h * P + p) * N + n] = W[h * W_rows * P + n * P + p];
    }
  }
}

void ssd_state_correction(const SsdShape& s, const float* dt, const float* A, const float* C,
                          int64_t ld_c, const float* incoming_state, float* y, int64_t ld_y,
                          float* final_state) {
  check_ssd_shape(s, "cpu::ssd_state_correction");
  const int64_t L = s.len, H = s.heads, P = s.head_dim, G = s.groups, N = s.state;
  const int64_t hpg = H / G;
  const int64_t Q = std::min<int64_t>(s.chunk > 0 ? s.chunk : 256, std::max<int64_t>(L, 1));
  const int64_t chunks = (L + Q - 1) / Q;

  const bool parallel = L * H * P * N >= kParallelMinWork;

  // dt summed from the segment start to each chunk start, per head (exclusive).
  std::vector<double> dt_before((chunks + 1) * H);
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t h = 0; h < H; ++h) {
    double acc = 0.0;
    for (int64_t c = 0; c < chunks; ++c) {
      dt_before[c * H + h] = acc;
      for (int64_t t = c * Q; t < std::min(L, (c + 1) * Q); ++t) acc += dt[t * H + h];
    }
    dt_before[chunks * H + h] = acc;
  }

  // The group's heads are consecutive in the state and in y, so one GEMM per
  // (chunk, group) gives C H^T for all of them: T = C_g [H_h ...]^T.
#pragma omp parallel if (parallel)
  {
    const FlushDenormals ftz;
    std::vector<float> T(Q * hpg * P);
    std::vector<float> decay(Q * hpg);
#pragma omp for collapse(2) schedule(dynamic)
    for (int64_t c = 0; c < chunks; ++c)
      for (int64_t g = 0; g < G; ++g) {
        const int64_t c0 = c * Q, q = std::min(Q, L - c0);
        // Rows past the last nonzero decay add exactly nothing: far into a long
        // segment the incoming state has usually decayed away for all heads.
        int64_t rows = 0;
        for (int64_t k = 0; k < hpg; ++k) {
          const int64_t h = g * hpg + k;
          double acc = dt_before[c * H + h];
          for (int64_t i = 0; i < q; ++i) {
            acc += dt[(c0 + i) * H + h];
            const float e = static_cast<float>(std::exp(static_cast<double>(A[h]) * acc));
            decay[i * hpg + k] = e;
            if (e != 0.0f) rows = std::max(rows, i + 1);
          }
        }
        if (rows == 0) continue;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, hpg * P, N, 1.0f,
                    C + c0 * ld_c + g * N, ld_c, incoming_state + g * hpg * P * N, N, 0.0f,
                    T.data(), hpg * P);
        for (int64_t i = 0; i < rows; ++i) {
          float* yi = y + (c0 + i) * ld_y + g * hpg * P;
          const float* ti = T.data() + i * hpg * P;
          for (int64_t k = 0; k < hpg; ++k) {
            const float e = decay[i * hpg + k];
            for (int64_t p = 0; p < P; ++p) yi[k * P + p] += e * ti[k * P + p];
          }
        }
      }
  }

  if (final_state) {
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t h = 0; h < H; ++h) {
      const float e = static_cast<float>(std::exp(static_cast<double>(A[h]) * dt_before[chunks * H + h]));
      for (int64_t k = 0; k < P * N; ++k)
        final_state[h * P * N + k] += e * incoming_state[h * P * N + k];
    }
  }
}

// Row by row (dt is [len, heads]): one pass over memory, a double per head.
void ssd_segment_decay(const SsdShape& s, const float* dt, const float* A, float* decay) {
  check_ssd_shape(s, "cpu::ssd_segment_decay");
  std::vector<double> sum(s.heads, 0.0);
  for (int64_t t = 0; t < s.len; ++t)
    for (int64_t h = 0; h < s.heads; ++h) sum[h] += dt[t * s.heads + h];
  for (int64_t h = 0; h < s.heads; ++h) decay[h] = static_cast<float>(std::exp(static_cast<double>(A[h]) * sum[h]));
}

}  // namespace ringscan::kernels::cpu
