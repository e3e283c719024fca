// One block per row: block max, block sum of exp(x - max) in fp32, then
// x - (max + log(sum)). The sum has terms in (0, 1] and one term equal to 1;
// per-thread serial sums of vocab/512 terms plus a 9-level tree give a
// relative error of about (vocab/512 + 9) * 2^-24, i.e. an absolute error of
// the same size in log(sum) (~1.6e-5 at vocab 131072, worst case).
#include "cuda/cuda_common.cuh"
#include "log_softmax.h"

namespace ringscan::kernels::cuda {
namespace {

constexpr int kBlock = 512;

// log(sum exp(x)) of one row, on every thread of the block.
__device__ float row_logsumexp(const float* lr, int64_t vocab, float* scratch) {
  float mx = -INFINITY;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) mx = fmaxf(mx, lr[i]);
  mx = detail::block_max(mx, scratch);
  float s = 0.f;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) s += expf(lr[i] - mx);
  s = detail::block_sum(s, scratch);
  return mx + logf(s);
}

__global__ void token_log_prob_kernel(const float* logits, int64_t rows, int64_t vocab, const int32_t* targets,
                                      float* out) {
  __shared__ float scratch[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* lr = logits + r * vocab;
    const float lse = row_logsumexp(lr, vocab, scratch);
    if (threadIdx.x == 0) out[r] = lr[targets[r]] - lse;
  }
}

__global__ void log_softmax_kernel(const float* logits, int64_t rows, int64_t vocab, float* out) {
  __shared__ float scratch[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* lr = logits + r * vocab;
    const float lse = row_logsumexp(lr, vocab, scratch);
    // All reads of the row happened before the reduction's barriers, and each
    // thread rewrites only its own elements: safe when out aliases logits.
    for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) out[r * vocab + i] = lr[i] - lse;
  }
}

}  // namespace

void log_softmax(const float* logits, int64_t rows, int64_t vocab, float* out, GpuStream stream) {
  if (rows <= 0 || vocab <= 0) return;
  const unsigned grid = static_cast<unsigned>(rows < 65535 * 16 ? rows : 65535 * 16);
  log_softmax_kernel<<<grid, kBlock, 0, stream>>>(logits, rows, vocab, out);
  detail::check_launch("log_softmax");
}

void token_log_prob(const float* logits, int64_t rows, int64_t vocab, const int32_t* targets, float* out, GpuStream stream) {
  if (rows <= 0 || vocab <= 0) return;
  const unsigned grid = static_cast<unsigned>(rows < 65535 * 16 ? rows : 65535 * 16);
  token_log_prob_kernel<<<grid, kBlock, 0, stream>>>(logits, rows, vocab, targets, out);
  detail::check_launch("token_log_prob");
}

}  // namespace ringscan::kernels::cuda
