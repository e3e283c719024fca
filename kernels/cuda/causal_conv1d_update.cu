// Decode conv for a batch (causal_conv1d.h): one thread per (sequence,
// channel) reads that channel's K-1 history rows, writes the output and shifts
// the column in place; no other thread touches the column, so the in-place
// shift needs no barrier. Consecutive threads take consecutive channels: the
// history rows and x load coalesced.
#include "causal_conv1d.h"
#include "cuda/cuda_common.cuh"

namespace ringscan::kernels::cuda {
namespace {

constexpr int kBlock = 256;

__global__ void causal_conv1d_update_kernel(const float* x, int64_t ld_x, int64_t batch, int64_t channels,
                                            float* const* history, const void* w, DType wdt, int64_t K,
                                            const void* bias, DType bdt, bool apply_silu, float* out) {
  const int64_t n = batch * channels;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < n; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = k / channels, c = k % channels;
    float* hist = history[b];
    if (!hist) {  // padding row
      out[k] = 0.f;
      continue;
    }
    const float xv = x[b * ld_x + c];
    float sum = bias ? detail::load_weight(bias, bdt, c) : 0.f;
    for (int64_t j = 0; j + 1 < K; ++j) {
      const float hv = hist[j * channels + c];
      sum = fmaf(detail::load_weight(w, wdt, c * K + j), hv, sum);
      if (j > 0) hist[(j - 1) * channels + c] = hv;  // shift up as we go
    }
    sum = fmaf(detail::load_weight(w, wdt, c * K + K - 1), xv, sum);
    if (K > 1) hist[(K - 2) * channels + c] = xv;
    if (apply_silu) sum = sum / (1.f + expf(-sum));
    out[k] = sum;
  }
}

}  // namespace

void causal_conv1d_update(const float* x, int64_t ld_x, int64_t batch, int64_t channels, float* const* history,
                          const WeightView& weight, const WeightView& bias, bool apply_silu, float* out,
                          GpuStream stream) {
  const int64_t K = weight.cols;
  if (weight.rows != channels || K < 1)
    throw std::invalid_argument("cuda::causal_conv1d_update: weight must be [channels, kernel size]");
  if (!bias.empty() && bias.numel() != channels)
    throw std::invalid_argument("cuda::causal_conv1d_update: bias must have one element per channel");
  const int64_t n = batch * channels;
  if (n <= 0) return;
  causal_conv1d_update_kernel<<<detail::grid_for(n, kBlock), kBlock, 0, stream>>>(
      x, ld_x, batch, channels, history, weight.data, weight.dtype, K, bias.data, bias.dtype, apply_silu, out);
  detail::check_launch("causal_conv1d_update");
}

}  // namespace ringscan::kernels::cuda
