#pragma once
#include <cstdint>

#include "gpu_op.h"

namespace ringscan::kernels {
// out[r, :] = logits[r, :] - logsumexp(logits[r, :]), rows contiguous [rows, vocab];
// out may alias logits. Computed in fp32 with the max subtracted.
#define RINGSCAN_LOG_SOFTMAX_SIG (const float* logits, int64_t rows, int64_t vocab, float* out)
// Scoring: out[r] = log_softmax(logits[r, :])[targets[r]], the same number
// log_softmax gives, without writing the [rows, vocab] result. targets must be
// in [0, vocab) (checked by the callers, which know the document).
#define RINGSCAN_TOKEN_LOG_PROB_SIG \
  (const float* logits, int64_t rows, int64_t vocab, const int32_t* targets, float* out)
namespace ref {
void log_softmax RINGSCAN_LOG_SOFTMAX_SIG;
void token_log_prob RINGSCAN_TOKEN_LOG_PROB_SIG;
}  // namespace ref
namespace cpu {
void log_softmax RINGSCAN_LOG_SOFTMAX_SIG;
void token_log_prob RINGSCAN_TOKEN_LOG_PROB_SIG;
}  // namespace cpu
#ifdef RINGSCAN_WITH_CUDA
namespace cuda {  // device pointers (targets and out too), see cuda/cuda_common.cuh
void log_softmax RINGSCAN_CUDA_SIG(RINGSCAN_LOG_SOFTMAX_SIG);
void token_log_prob RINGSCAN_CUDA_SIG(RINGSCAN_TOKEN_LOG_PROB_SIG);
}  // namespace cuda
#endif
}  // namespace ringscan::kernels
