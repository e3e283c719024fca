#pragma once
#include <cstdint>

#include "gpu_op.h"
#include "ssd_scan.h"

namespace ringscan::kernels {
// One token of the Mamba-2 recurrence for each of a batch of sequences
// (decode), the state updated in place: row b of x/dt/B/C is the new token of
// sequence b, whose state is state[b] ([heads, head_dim, state], fp32). Per
// head h, group g = h / (heads / groups):
//   a = exp(dt[b,h] * A[h])
//   S = a * S + dt[b,h] * x[b,h,:] (outer) B[b,g,:]
//   y[b,h,:] = S @ C[b,g,:]          (no D*x skip: the mixer adds it)
// It is ssd_scan with len 1 and init_state == final_state, without the
// chunked machinery (layout transposes, small GEMMs) that only pays off over
// many tokens. s.len is the batch size; s.chunk is unused. x, B, C, y are
// row-major with the leading dimensions given (as ssd_scan); dt is
// [batch, heads] contiguous. A null state[b] marks a padding row (a captured
// batch size above the batch): its y row is zeros, no state is touched.
#define RINGSCAN_SSD_STEP_SIG                                                                  \
  (const SsdShape& s, const float* x, int64_t ld_x, const float* dt, const float* A, const float* B, \
   int64_t ld_b, const float* C, int64_t ld_c, float* const* state, float* y, int64_t ld_y)
namespace ref { void ssd_step RINGSCAN_SSD_STEP_SIG; }
namespace cpu { void ssd_step RINGSCAN_SSD_STEP_SIG; }
#ifdef RINGSCAN_WITH_CUDA
// CUDA (kernels/cuda/ssd_step.cu): every pointer is a device pointer, A
// included; `state` is a DEVICE array of s.len device pointers, each to one
// sequence's [heads, head_dim, state] fp32 state (distinct sequences must not
// share a state). No synchronisation at return.
namespace cuda { void ssd_step RINGSCAN_CUDA_SIG(RINGSCAN_SSD_STEP_SIG); }
#endif
}  // namespace ringscan::kernels
