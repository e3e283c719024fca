// Shared by the attention kernels (attention.cu: fp32 SIMT; attention_mma.cu:
// bf16 tensor cores): the shape check, the geometry of packed query rows and
// causal visibility, the split-over-keys decision and the kernel that folds
// split partials into the running state. Included by one .cu each;
// everything has internal linkage.
#pragma once
#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <stdexcept>
#include <string>

#include "attention.h"
#include "cuda/cuda_common.cuh"

namespace ringscan::kernels::cuda {
namespace {

constexpr int kMinTilesPerSplit = 4;  // a split of fewer key tiles is not worth a partial
constexpr int kMaxSplits = 64;

void check_attention_shape(const AttentionShape& s, const char* op) {
  if (s.kv_heads <= 0 || s.q_heads <= 0 || s.q_heads % s.kv_heads != 0)
    throw std::invalid_argument(std::string("cuda::") + op + ": q_heads must be a positive multiple of kv_heads");
  if (s.head_dim <= 0 || s.head_dim > 256)
    throw std::invalid_argument(std::string("cuda::") + op + ": head_dim must be in 1..256");
  if (s.kv_heads > 65535 || s.q_heads > INT_MAX / 256)
    throw std::invalid_argument(std::string("cuda::") + op + ": too many heads");
}

// Packed row pr of KV head g (query pr / G, head g * G + pr % G; a.R = lq * G
// rows): its state row i * H + head, or -1 past the last row, and how many
// keys of the block it sees (keys with k_pos <= q_pos when causal). Args: a
// kernel's argument struct (q_pos0, k_pos0, lk, causal, G, H, lq).
template <class Args>
__device__ __forceinline__ void packed_row(const Args& a, int g, int64_t pr, int64_t& srow, int& vis) {
  srow = -1;
  vis = 0;
  if (pr >= a.lq * a.G) return;
  const int64_t i = pr / a.G;
  srow = i * a.H + g * a.G + pr % a.G;
  const int64_t lim = a.q_pos0 + i - a.k_pos0 + 1;
  vis = a.causal ? static_cast<int>(lim < 0 ? 0 : (lim > a.lk ? a.lk : lim)) : a.lk;
}

// Keys [0, n) that some packed row of [r0, r0 + rows) sees: the last row sees
// the most (visibility grows with the query position), so key tiles past it
// are skipped.
template <class Args>
__device__ __forceinline__ int keys_seen(const Args& a, int64_t r0, int rows) {
  if (!a.causal) return a.lk;
  const int64_t R = a.lq * a.G;
  const int64_t i_last = ((r0 + rows < R ? r0 + rows : R) - 1) / a.G;
  const int64_t lim = a.q_pos0 + i_last - a.k_pos0 + 1;
  return static_cast<int>(lim < 0 ? 0 : (lim > a.lk ? a.lk : lim));
}

// The key tiles [begin, end) of this CTA: all n_tiles, or its split's share.
__device__ __forceinline__ void tile_range(int n_tiles, bool split, int tiles_per_split, int& begin, int& end) {
  begin = 0;
  end = n_tiles;
  if (split) {
    begin = blockIdx.z * tiles_per_split;
    end = min(n_tiles, begin + tiles_per_split);
  }
}

// Raises `kernel`'s dynamic shared memory limit to `bytes` once per device
// (a host API call: after the first call of a process, never inside a layer
// loop or a captured graph); `done` is the caller's flag for that kernel, one
// bit per device (devices past 64 ask every time).
template <class Kernel>
void allow_smem_once(Kernel kernel, int bytes, std::atomic<uint64_t>& done, const char* op) {
  int dev = 0;
  detail::check_cuda(cudaGetDevice(&dev), op, "cudaGetDevice");
  const uint64_t bit = dev < 64 ? uint64_t{1} << dev : 0;
  if (bit && (done.load(std::memory_order_acquire) & bit)) return;
  detail::check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes), op,
                     "cudaFuncSetAttribute");
  done.fetch_or(bit, std::memory_order_acq_rel);
}

// The current device's SM count, asked once per device (a host API call per
// launch would be a cost in decode loops).
int current_sm_count() {
  constexpr int kMaxDevices = 64;
  static int cached[kMaxDevices] = {};
  int dev = 0;
  detail::check_cuda(cudaGetDevice(&dev), "attention_block", "cudaGetDevice");
  if (dev >= 0 && dev < kMaxDevices && cached[dev] > 0) return cached[dev];
  int n = 0;
  detail::check_cuda(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev), "attention_block",
                     "cudaDeviceGetAttribute");
  if (dev >= 0 && dev < kMaxDevices) cached[dev] = n;
  return n;
}

// How many key splits a launch of `ctas` CTAs over `key_tiles` tiles uses:
// only when the CTAs do not fill the GPU (decode, short queries), and never
// more than max_splits. Returns the split count and sets tiles_per_split.
int64_t choose_key_splits(int64_t ctas, int64_t key_tiles, int64_t max_splits, int* tiles_per_split) {
  int64_t splits = 1;
  const int sms = current_sm_count();
  if (ctas < sms)
    splits = std::min<int64_t>({(2 * sms + ctas - 1) / ctas, key_tiles / kMinTilesPerSplit, max_splits});
  splits = std::max<int64_t>(splits, 1);
  *tiles_per_split = static_cast<int>((key_tiles + splits - 1) / splits);
  return (key_tiles + *tiles_per_split - 1) / *tiles_per_split;  // no split left empty everywhere
}

// Folds the split partials into the state, in split order: one block per state row.
__global__ void combine_splits_kernel(const float* pacc, const float* pm, const float* pl, int splits, int64_t rows,
                                      int D, float* acc, float* m, float* l) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float m_old = m[r];
    float m_new = m_old;
    for (int z = 0; z < splits; ++z) m_new = fmaxf(m_new, pm[z * rows + r]);
    if (m_new == -INFINITY) continue;  // no key anywhere (uniform over the block)
    const float w0 = expf(m_old - m_new);  // 0 when m_old == -inf
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
      float x = acc[r * D + d] * w0;
      for (int z = 0; z < splits; ++z) x += pacc[(z * rows + r) * D + d] * expf(pm[z * rows + r] - m_new);
      acc[r * D + d] = x;
    }
    float ls = 0.f;
    if (threadIdx.x == 0) {
      ls = l[r] * w0;
      for (int z = 0; z < splits; ++z) ls += pl[z * rows + r] * expf(pm[z * rows + r] - m_new);
    }
    __syncthreads();  // every thread has read m[r] before it changes
    if (threadIdx.x == 0) {
      m[r] = m_new;
      l[r] = ls;
    }
  }
}

void launch_combine_splits(const float* pacc, const float* pm, const float* pl, int64_t splits, int64_t rows, int D,
                           float* acc, float* m, float* l, cudaStream_t stream) {
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(rows, 65535 * 16));
  combine_splits_kernel<<<grid, 128, 0, stream>>>(pacc, pm, pl, static_cast<int>(splits), rows, D, acc, m, l);
  detail::check_launch("attention_block (combine splits)");
}

}  // namespace
}  // namespace ringscan::kernels::cuda
