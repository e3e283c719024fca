#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace ringscan::kernels {
// Mamba-2 selective state-space scan (SSD). Per head h, with state
// S (head_dim x state), scalar decay a_t = exp(dt[t,h] * A[h]) and group
// g = h / (heads / groups) (repeat-interleave: consecutive heads share a group):
//   S_t = a_t * S_{t-1} + dt[t,h] * x[t,h,:] (outer) B[t,g,:]
//   y[t,h,:] = S_t @ C[t,g,:]
// S_{-1} = init_state (zeros when null). The D*x skip term is NOT included
// (the mixer adds it). final_state (if not null) receives S_{len-1}.
//
// The fast CPU version works in chunks of `chunk` tokens in matrix form
// (intra-chunk outputs as small GEMMs with the decay-masked C B^T, chunk states
// as GEMMs, a short sequential pass over chunk states), so prefill time is
// dominated by GEMMs. Any len (including len % chunk != 0, len < chunk, 1).
//
// Layouts (row leading dimensions in elements):
//   x  [len, heads * head_dim]  ld_x        dt [len, heads] contiguous
//   B  [len, groups * state]    ld_b        C  [len, groups * state]  ld_c
//   A  [heads] (negative: A = -exp(A_log))
//   init_state / final_state [heads, head_dim, state] contiguous
//   y  [len, heads * head_dim]  ld_y (overwritten)
struct SsdShape {
  int64_t len;
  int64_t heads;
  int64_t head_dim;
  int64_t groups;
  int64_t state;
  int64_t chunk;
};

// The shape every SSD op (scan, correction, step; every backend) accepts;
// `who` names the op in the exception.
inline void check_ssd_shape(const SsdShape& s, const char* who) {
  if (s.len < 0 || s.heads <= 0 || s.head_dim <= 0 || s.groups <= 0 || s.state <= 0 || s.heads % s.groups != 0)
    throw std::invalid_argument(std::string(who) +
                                ": expected len >= 0, positive heads/head_dim/groups/state "
                                "and heads divisible by groups");
}

#define RINGSCAN_SSD_SCAN_SIG                                                            \
  (const SsdShape& s, const float* x, int64_t ld_x, const float* dt, const float* A,    \
   const float* B, int64_t ld_b, const float* C, int64_t ld_c, const float* init_state, \
   float* y, int64_t ld_y, float* final_state)

// Adds the contribution of an incoming state H (what sequence parallelism
// learns only after the local scan) to outputs computed from a zero state:
//   y[t,h,:] += exp(A[h] * sum_{s<=t} dt[s,h]) * (H[h] @ C[t,g,:])
// and, if final_state is not null, adds exp(A[h] * sum_all dt) * H[h] to it.
// chunk is unused here except as a blocking hint.
#define RINGSCAN_SSD_STATE_CORRECTION_SIG                                               \
  (const SsdShape& s, const float* dt, const float* A, const float* C, int64_t ld_c,    \
   const float* incoming_state, float* y, int64_t ld_y, float* final_state)

namespace ref {
void ssd_scan RINGSCAN_SSD_SCAN_SIG;
void ssd_state_correction RINGSCAN_SSD_STATE_CORRECTION_SIG;
}  // namespace ref
namespace cpu {
void ssd_scan RINGSCAN_SSD_SCAN_SIG;
void ssd_state_correction RINGSCAN_SSD_STATE_CORRECTION_SIG;
}  // namespace cpu
#ifdef RINGSCAN_WITH_CUDA
// CUDA (kernels/cuda/ssd_scan.cu): EVERY pointer is a device pointer, A
// included ([heads] floats in device memory), and so are init_state /
// final_state / incoming_state. Runs on the legacy default stream and returns
// without synchronising. Both ops take scratch memory from a per-(host thread,
// device) buffer that grows on demand (a larger need synchronises the device
// once to free the old buffer); ssd_scan processes the sequence in passes of
// at most ~256 MiB of scratch, carrying the state from pass to pass.
// Unlike the CPU version, ssd_scan may be given init_state == final_state (the
// state is then updated in place); no other output may alias an input.
namespace cuda {
void ssd_scan RINGSCAN_SSD_SCAN_SIG;
void ssd_state_correction RINGSCAN_SSD_STATE_CORRECTION_SIG;
}  // namespace cuda
#endif
}  // namespace ringscan::kernels
