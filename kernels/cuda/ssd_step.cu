// One decode token per sequence: one block per (sequence, head), one warp per
// row p of the head's head_dim x state block, lanes over the state dimension.
// Each state element is read, updated and written once (the state traffic is
// the cost: 3.75 MiB per layer and sequence for the 4B model), rows are
// contiguous so the accesses coalesce, and y[p] is a warp sum.
#include "cuda/cuda_common.cuh"
#include "ssd_step.h"

namespace ringscan::kernels::cuda {
namespace {

constexpr int kBlock = 128;  // 4 warps; a multiple of 32 (warp_sum needs full warps)

__global__ void __launch_bounds__(kBlock)
    ssd_step_kernel(int64_t heads, int64_t P, int64_t heads_per_group, int64_t N, const float* x,
                    int64_t ld_x, const float* dt, const float* A, const float* B, int64_t ld_b,
                    const float* C, int64_t ld_c, float* const* state, float* y, int64_t ld_y) {
  const int64_t task = blockIdx.x, b = task / heads, h = task % heads, g = h / heads_per_group;
  if (!state[b]) {  // a padding row (block-uniform): zeros, no state
    for (int64_t p = threadIdx.x; p < P; p += blockDim.x) y[b * ld_y + h * P + p] = 0.f;
    return;
  }
  const float d = dt[b * heads + h];
  const float a = expf(d * A[h]);  // underflows to 0 for very strong decays: fine
  const float* xb = x + b * ld_x + h * P;
  const float* Bb = B + b * ld_b + g * N;
  const float* Cb = C + b * ld_c + g * N;
  float* S = state[b] + h * P * N;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  for (int64_t p = warp; p < P; p += warps) {  // warp-uniform loop: all lanes reach warp_sum
    const float dx = d * xb[p];
    float* row = S + p * N;
    float acc = 0.f;
    for (int64_t n = lane; n < N; n += 32) {
      const float v = fmaf(a, row[n], dx * Bb[n]);
      row[n] = v;
      acc = fmaf(v, Cb[n], acc);
    }
    acc = detail::warp_sum(acc);
    if (lane == 0) y[b * ld_y + h * P + p] = acc;
  }
}

}  // namespace

void ssd_step(const SsdShape& s, const float* x, int64_t ld_x, const float* dt, const float* A,
              const float* B, int64_t ld_b, const float* C, int64_t ld_c, float* const* state,
              float* y, int64_t ld_y, GpuStream stream) {
  check_ssd_shape(s, "cuda::ssd_step");
  const int64_t tasks = s.len * s.heads;
  if (tasks == 0) return;
  if (tasks > 0x7fffffff)
    throw std::invalid_argument("cuda::ssd_step: batch * heads exceeds the grid limit");
  ssd_step_kernel<<<static_cast<unsigned>(tasks), kBlock, 0, stream>>>(s.heads, s.head_dim,
                                                            s.heads / s.groups, s.state, x, ld_x,
                                                            dt, A, B, ld_b, C, ld_c, state, y, ld_y);
  detail::check_launch("ssd_step");
}

}  // namespace ringscan::kernels::cuda
