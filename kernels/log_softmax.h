#pragma once
#include <cstdint>

namespace ringscan::kernels {
// out[r, :] = logits[r, :] - logsumexp(logits[r, :]), rows contiguous [rows, vocab];
// out may alias logits. Computed in fp32 with the max subtracted.
#define RINGSCAN_LOG_SOFTMAX_SIG (const float* logits, int64_t rows, int64_t vocab, float* out)
namespace ref { void log_softmax RINGSCAN_LOG_SOFTMAX_SIG; }
namespace cpu { void log_softmax RINGSCAN_LOG_SOFTMAX_SIG; }
#ifdef RINGSCAN_WITH_CUDA
namespace cuda { void log_softmax RINGSCAN_LOG_SOFTMAX_SIG; }  // device pointers, see cuda/cuda_common.cuh
#endif
}  // namespace ringscan::kernels
