#pragma once
#include <cstdint>

#include "gpu_op.h"
#include "weight_view.h"

namespace ringscan::kernels {
// Depthwise causal 1-D convolution over time (Mamba's conv1d):
//   out[t, c] = bias[c] + sum_{j=0..K-1} weight[c, j] * xx[t - (K-1) + j, c]
// where xx is x preceded by `history` ([K-1, channels], the rows before x: the
// halo from the previous segment, or the decode state); history == nullptr
// means zeros. x has leading dimension ld_x; out is [rows, channels]
// contiguous. weight is [channels, K] (HF's [C, 1, K] squeezed); bias may be
// empty. apply_silu applies silu to the result (Mamba always does).
#define RINGSCAN_CAUSAL_CONV1D_SIG                                                  \
  (const float* x, int64_t ld_x, int64_t rows, int64_t channels, const float* history, \
   const WeightView& weight, const WeightView& bias, bool apply_silu, float* out)
namespace ref { void causal_conv1d RINGSCAN_CAUSAL_CONV1D_SIG; }
namespace cpu { void causal_conv1d RINGSCAN_CAUSAL_CONV1D_SIG; }
#ifdef RINGSCAN_WITH_CUDA
namespace cuda {  // device pointers, see cuda/cuda_common.cuh
void causal_conv1d RINGSCAN_CUDA_SIG(RINGSCAN_CAUSAL_CONV1D_SIG);
// Packed sequences (varlen): rows of several sequences stacked, seq_idx[t]
// (device, [rows], non-decreasing) the sequence of row t. Each sequence is
// convolved alone from a zero history: equal to causal_conv1d over each
// sequence's rows with history == nullptr.
void causal_conv1d_varlen(const float* x, int64_t ld_x, int64_t rows, int64_t channels, const int32_t* seq_idx,
                          const WeightView& weight, const WeightView& bias, bool apply_silu, float* out,
                          GpuStream stream = nullptr);
}  // namespace cuda
#endif
}  // namespace ringscan::kernels
