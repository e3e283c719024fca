// One thread per (time, channel): K (4 for Nemotron-H) taps in fp32, reading
// the rows before x from `history` (device memory, [K-1, channels]) or zeros.
// Consecutive threads take consecutive channels, so loads coalesce. Packed
// sequences (seq_idx): a tap on a row of another sequence reads zero, as if
// each sequence were convolved alone from a zero history.
#include "causal_conv1d.h"
#include "cuda/cuda_common.cuh"

namespace ringscan::kernels::cuda {
namespace {

constexpr int kBlock = 256;

__global__ void causal_conv1d_kernel(const float* x, int64_t ld_x, int64_t rows, int64_t channels,
                                     const float* history, const void* w, DType wdt, int64_t K,
                                     const void* bias, DType bdt, bool apply_silu, const int32_t* seq_idx,
                                     float* out) {
  const int64_t n = rows * channels;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < n;
       k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = k / channels, c = k % channels;
    float sum = bias ? detail::load_weight(bias, bdt, c) : 0.f;
    for (int64_t j = 0; j < K; ++j) {
      const int64_t s = t - (K - 1) + j;  // time index into x; negative: history
      float xv;
      if (s >= 0)
        xv = seq_idx && seq_idx[s] != seq_idx[t] ? 0.f : x[s * ld_x + c];
      else
        xv = history ? history[(K - 1 + s) * channels + c] : 0.f;
      sum = fmaf(detail::load_weight(w, wdt, c * K + j), xv, sum);
    }
    if (apply_silu) sum = sum / (1.f + expf(-sum));
    out[k] = sum;
  }
}

}  // namespace

namespace {
void launch_conv(const float* x, int64_t ld_x, int64_t rows, int64_t channels, const float* history,
                 const int32_t* seq_idx, const WeightView& weight, const WeightView& bias, bool apply_silu, float* out,
                 GpuStream stream) {
  const int64_t K = weight.cols;
  if (weight.rows != channels || K < 1)
    throw std::invalid_argument("cuda::causal_conv1d: weight must be [channels, kernel size]");
  if (!bias.empty() && bias.numel() != channels)
    throw std::invalid_argument("cuda::causal_conv1d: bias must have one element per channel");
  const int64_t n = rows * channels;
  if (n <= 0) return;
  causal_conv1d_kernel<<<detail::grid_for(n, kBlock), kBlock, 0, stream>>>(
      x, ld_x, rows, channels, history, weight.data, weight.dtype, K, bias.data, bias.dtype,
      apply_silu, seq_idx, out);
  detail::check_launch("causal_conv1d");
}
}  // namespace

void causal_conv1d(const float* x, int64_t ld_x, int64_t rows, int64_t channels,
                   const float* history, const WeightView& weight, const WeightView& bias,
                   bool apply_silu, float* out, GpuStream stream) {
  launch_conv(x, ld_x, rows, channels, history, nullptr, weight, bias, apply_silu, out, stream);
}

void causal_conv1d_varlen(const float* x, int64_t ld_x, int64_t rows, int64_t channels, const int32_t* seq_idx,
                          const WeightView& weight, const WeightView& bias, bool apply_silu, float* out,
                          GpuStream stream) {
  if (!seq_idx) throw std::invalid_argument("cuda::causal_conv1d_varlen: seq_idx is required");
  launch_conv(x, ld_x, rows, channels, nullptr, seq_idx, weight, bias, apply_silu, out, stream);
}

}  // namespace ringscan::kernels::cuda
