// The five stages of the chunked SSD scan (ssd_scan.h), in the form of
// mamba_ssm's chunk_scan_combined, each on its own so that each has a
// plain-loop reference and a test (tests/kernels_cuda/test_ssd_stages_cuda.cpp).
// cuda::ssd_scan and ssd_scan_bf16 are these stages run over passes of chunks.
//
// For one head h, chunk c of q <= Q tokens (Q = min(s.chunk, s.len); the last
// chunk may be short), cs[t] the inclusive cumulative sum of dt*A over the
// chunk and H_c the state entering it:
//   cumsum:         cs[t] (double), exp_cs[t] = exp(cs[t]),
//                   w[t] = exp(cs[q-1] - cs[t]) dt[t], decay = exp(cs[q-1])
//   chunk C B^T:    cb[t, s] = C[t] . B[s] per (chunk, group), s <= t (the
//                   entries above the diagonal are not written)
//   chunk state:    S_c[p, n] = sum_t w[t] x[t, p] B[t, n]   (from a zero state)
//   state passing:  H_0 = init (zeros when null), H_{c+1} = decay_c H_c + S_c;
//                   states[c] becomes H_c; final (may be null) = H_chunks
//   chunk scan:     y[t, p] = sum_{s<=t} cb[t, s] exp(cs[t] - cs[s]) dt[s] x[s, p]
//                             + exp_cs[t] sum_n C[t, n] H_c[p, n]
//                   (the state term skipped for chunk 0 when first_has_state is
//                   false: a zero incoming state)
// Layouts (rows of the whole sequence of s.len tokens; x, B, C, dt, A as in
// ssd_scan.h): cs, exp_cs, w [len, heads]; decay [chunks, heads];
// states [chunks, heads, head_dim, state]; cb [chunks, groups, Q, Q].
//
// bf16 (cuda only): the GEMM stages' operands rounded to bf16 and multiplied on
// the tensor cores with fp32 accumulation (ssd_scan_bf16); otherwise fp32.
#pragma once
#include <cstdint>

#include "gpu_op.h"
#include "ssd_scan.h"

namespace ringscan::kernels {

#define RINGSCAN_SSD_CUMSUM_SIG \
  (const SsdShape& s, const float* dt, const float* A, double* cs, float* exp_cs, float* w, float* decay)
#define RINGSCAN_SSD_CHUNK_CB_SIG \
  (const SsdShape& s, const float* B, int64_t ld_b, const float* C, int64_t ld_c, float* cb)
#define RINGSCAN_SSD_CHUNK_STATE_SIG \
  (const SsdShape& s, const float* x, int64_t ld_x, const float* B, int64_t ld_b, const float* w, float* states)
#define RINGSCAN_SSD_STATE_PASSING_SIG \
  (const SsdShape& s, const float* decay, const float* init, float* states, float* final_state)
#define RINGSCAN_SSD_CHUNK_SCAN_SIG                                                                         \
  (const SsdShape& s, const float* x, int64_t ld_x, const float* dt, const float* C, int64_t ld_c,          \
   const double* cs, const float* exp_cs, const float* cb, const float* states, bool first_has_state, float* y, \
   int64_t ld_y)

namespace ref {
void ssd_chunk_cumsum RINGSCAN_SSD_CUMSUM_SIG;
void ssd_chunk_cb RINGSCAN_SSD_CHUNK_CB_SIG;
void ssd_chunk_state RINGSCAN_SSD_CHUNK_STATE_SIG;
void ssd_state_passing RINGSCAN_SSD_STATE_PASSING_SIG;
void ssd_chunk_scan RINGSCAN_SSD_CHUNK_SCAN_SIG;
}  // namespace ref

#ifdef RINGSCAN_WITH_CUDA
// Device pointers (A too); all s.len tokens in one launch per stage (at most
// 65535 chunks). The _bf16 stages are the tensor-core ones.
namespace cuda {
void ssd_chunk_cumsum RINGSCAN_CUDA_SIG(RINGSCAN_SSD_CUMSUM_SIG);
void ssd_chunk_cb RINGSCAN_CUDA_SIG(RINGSCAN_SSD_CHUNK_CB_SIG);
void ssd_chunk_cb_bf16 RINGSCAN_CUDA_SIG(RINGSCAN_SSD_CHUNK_CB_SIG);
void ssd_chunk_state RINGSCAN_CUDA_SIG(RINGSCAN_SSD_CHUNK_STATE_SIG);
void ssd_chunk_state_bf16 RINGSCAN_CUDA_SIG(RINGSCAN_SSD_CHUNK_STATE_SIG);
void ssd_state_passing RINGSCAN_CUDA_SIG(RINGSCAN_SSD_STATE_PASSING_SIG);
void ssd_chunk_scan RINGSCAN_CUDA_SIG(RINGSCAN_SSD_CHUNK_SCAN_SIG);
void ssd_chunk_scan_bf16 RINGSCAN_CUDA_SIG(RINGSCAN_SSD_CHUNK_SCAN_SIG);
}  // namespace cuda
#endif

}  // namespace ringscan::kernels
