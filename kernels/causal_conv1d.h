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

// Decode: one new row per sequence of a batch, each with its own history (like
// causal-conv1d's causal_conv1d_update). Row b of x (leading dimension ld_x) is
// sequence b's new pre-conv row; history[b] points to its [K-1, channels]
// history (oldest row first). out[b] (contiguous [batch, channels]) is
// causal_conv1d of that one row after history[b]; then history[b] becomes its
// last K-2 rows followed by x[b] (the history after the token), in place. A
// null history[b] marks a padding row (a captured batch size larger than the
// batch): out[b] is zeros and nothing else is touched. `history` is an array
// of batch pointers (host memory for ref/cpu, device memory for cuda).
#define RINGSCAN_CAUSAL_CONV1D_UPDATE_SIG                                                         \
  (const float* x, int64_t ld_x, int64_t batch, int64_t channels, float* const* history,          \
   const WeightView& weight, const WeightView& bias, bool apply_silu, float* out)
namespace ref { void causal_conv1d_update RINGSCAN_CAUSAL_CONV1D_UPDATE_SIG; }
namespace cpu { void causal_conv1d_update RINGSCAN_CAUSAL_CONV1D_UPDATE_SIG; }
#ifdef RINGSCAN_WITH_CUDA
namespace cuda {  // device pointers, see cuda/cuda_common.cuh
void causal_conv1d RINGSCAN_CUDA_SIG(RINGSCAN_CAUSAL_CONV1D_SIG);
void causal_conv1d_update RINGSCAN_CUDA_SIG(RINGSCAN_CAUSAL_CONV1D_UPDATE_SIG);
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
