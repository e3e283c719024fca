#pragma once
#include <cstdint>

#include "gpu_op.h"

namespace ringscan::kernels {
// Rotary position embedding, in place, GPT-NeoX "rotate_half" convention on
// the first rotary_dim channels of each head (the rest pass through):
//   inv_freq[i] = theta^(-2i/rotary_dim), i < rotary_dim/2, angle = pos * inv_freq[i]
//   x1 = x[i], x2 = x[i + rotary_dim/2]
//   x[i] = x1*cos - x2*sin;  x[i + rotary_dim/2] = x2*cos + x1*sin
// x is [rows, heads, head_dim] with row leading dimension ld_x; row r has
// position pos0 + r (a block of consecutive positions). Angles are computed in
// double; HF computes pos * inv_freq in fp32, which differs by up to pos * 2^-24
// radians (invisible at the fixtures' lengths, more accurate at long ones).
#define RINGSCAN_ROPE_SIG                                                      \
  (float* x, int64_t ld_x, int64_t rows, int64_t heads, int64_t head_dim,       \
   int64_t rotary_dim, int64_t pos0, float theta)
namespace ref { void rope RINGSCAN_ROPE_SIG; }
namespace cpu { void rope RINGSCAN_ROPE_SIG; }
#ifdef RINGSCAN_WITH_CUDA
namespace cuda {  // device pointers, see cuda/cuda_common.cuh
void rope RINGSCAN_CUDA_SIG(RINGSCAN_ROPE_SIG);
// The same with row r at position pos[r] (device, [rows]): a decode batch,
// each sequence at its own position, read on the device (a captured graph
// serves any positions). Equals rope of each row alone at pos0 = pos[r].
void rope_at(float* x, int64_t ld_x, int64_t rows, int64_t heads, int64_t head_dim, int64_t rotary_dim,
             const int64_t* pos, float theta, GpuStream stream = nullptr);
}  // namespace cuda
#endif
}  // namespace ringscan::kernels
