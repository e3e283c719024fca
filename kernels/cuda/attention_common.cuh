// Shared by the attention kernels (attention.cu: fp32 SIMT; attention_mma.cu:
// bf16 tensor cores): their arguments and the checks that make them, the
// geometry of packed query rows and causal visibility, the split-over-keys
// decision, the split partials' layout and the kernel that folds them into
// the running state. Included by one .cu each; everything has internal
// linkage.
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

// One attention_block call as a kernel takes it (attention.h's semantics):
// q, k, v in the kernel's input type (fp32 for the SIMT kernel; fp32 or bf16
// for the tensor-core one), the running state, and the split partials.
struct AttentionArgs {
  const void* q;
  int64_t ld_q, lq, q_pos0;
  const void* k;
  int64_t ld_k;
  const void* v;
  int64_t ld_v, k_pos0;
  int lk;
  float scale;
  bool causal;
  bool vec;  // tensor-core kernel: 16-byte loads (D % 8 == 0, every ld and base aligned)
  int H, G, D;
  float *acc, *m, *l;     // running state: read at the start, written at the end
  float *pacc, *pm, *pl;  // split partials [split][lq * H (* D)], or null when not split
  int tiles_per_split;
  // Varlen (attention_varlen): q and k are the same lq == lk packed rows and
  // seq[t] (device, non-decreasing) is row t's sequence; null otherwise.
  const int32_t* seq;
};

// The checks every attention_block entry makes, then its arguments (vec
// false, no split); false: nothing to do (no queries or no keys). The caller
// checks its row tiles fit a grid dimension.
bool make_attention_args(const char* op, const AttentionShape& s, const void* q, int64_t ld_q, int64_t lq,
                         int64_t q_pos0, const void* k, int64_t ld_k, const void* v, int64_t ld_v, int64_t lk,
                         int64_t k_pos0, float scale, bool causal, float* acc, float* m, float* l,
                         AttentionArgs* a) {
  check_attention_shape(s, op);
  if (lk > INT_MAX / 2) throw std::invalid_argument(std::string("cuda::") + op + ": lk too large");
  if (lq <= 0 || lk <= 0) return false;
  *a = AttentionArgs{q,     ld_q,   lq,    q_pos0, k,  ld_k, v, ld_v, k_pos0, static_cast<int>(lk),
                     scale, causal, false, static_cast<int>(s.q_heads), static_cast<int>(s.q_heads / s.kv_heads),
                     static_cast<int>(s.head_dim), acc, m, l, nullptr, nullptr, nullptr, 0, nullptr};
  return true;
}

// Varlen: the first row of row i's sequence, and one past its last (binary
// searches over the non-decreasing seq; n rows in all).
__device__ __forceinline__ int seq_begin(const int32_t* seq, int i) {
  const int32_t id = seq[i];
  int lo = 0, hi = i;
  while (lo < hi) {
    const int mid = lo + (hi - lo) / 2;
    if (seq[mid] < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
__device__ __forceinline__ int seq_end(const int32_t* seq, int n, int i) {
  const int32_t id = seq[i];
  int lo = i + 1, hi = n;
  while (lo < hi) {
    const int mid = lo + (hi - lo) / 2;
    if (seq[mid] <= id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// Packed row pr of KV head g (query pr / G, head g * G + pr % G; lq * G
// rows): its state row i * H + head, or -1 past the last row, and the keys
// [lo, hi) of the block it sees: keys with k_pos <= q_pos when causal; varlen:
// only those of its own sequence.
__device__ __forceinline__ void packed_row(const AttentionArgs& a, int g, int64_t pr, int64_t& srow, int& lo,
                                           int& hi) {
  srow = -1;
  lo = hi = 0;
  if (pr >= a.lq * a.G) return;
  const int64_t i = pr / a.G;
  srow = i * a.H + g * a.G + pr % a.G;
  if (a.seq) {
    lo = seq_begin(a.seq, static_cast<int>(i));
    hi = a.causal ? static_cast<int>(i) + 1 : seq_end(a.seq, a.lk, static_cast<int>(i));
    return;
  }
  const int64_t lim = a.q_pos0 + i - a.k_pos0 + 1;
  hi = a.causal ? static_cast<int>(lim < 0 ? 0 : (lim > a.lk ? a.lk : lim)) : a.lk;
}

// Keys [lo, hi) that some packed row of [r0, r0 + rows) sees: the last row
// sees the most (visibility grows with the query position), so key tiles past
// it are skipped; varlen: the first row's sequence starts the range, so the
// tiles of earlier sequences are skipped too.
__device__ __forceinline__ void key_range(const AttentionArgs& a, int64_t r0, int rows, int& lo, int& hi) {
  lo = 0;
  hi = a.lk;
  const int64_t R = a.lq * a.G;
  const int64_t i_last = ((r0 + rows < R ? r0 + rows : R) - 1) / a.G;
  if (a.seq) {
    lo = seq_begin(a.seq, static_cast<int>(r0 / a.G));
    hi = a.causal ? static_cast<int>(i_last) + 1 : seq_end(a.seq, a.lk, static_cast<int>(i_last));
    return;
  }
  if (!a.causal) return;
  const int64_t lim = a.q_pos0 + i_last - a.k_pos0 + 1;
  hi = static_cast<int>(lim < 0 ? 0 : (lim > a.lk ? a.lk : lim));
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

// The split partials of `splits` key splits over `rows` = lq * q_heads state
// rows: acc [splits][rows][head_dim], then m and l [splits][rows], in one buffer.
int64_t split_partials_bytes(int64_t splits, int64_t rows, int64_t head_dim) {
  return splits * rows * (head_dim + 2) * int64_t{sizeof(float)};
}
void carve_split_partials(AttentionArgs& a, void* base, int64_t splits) {
  const int64_t rows = a.lq * a.H;
  a.pacc = static_cast<float*>(base);
  a.pm = a.pacc + splits * rows * a.D;
  a.pl = a.pm + splits * rows;
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

void launch_combine_splits(const AttentionArgs& a, int64_t splits, cudaStream_t stream) {
  const int64_t rows = a.lq * a.H;
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(rows, 65535 * 16));
  combine_splits_kernel<<<grid, 128, 0, stream>>>(a.pacc, a.pm, a.pl, static_cast<int>(splits), rows, a.D, a.acc,
                                                  a.m, a.l);
  detail::check_launch("attention_block (combine splits)");
}

}  // namespace
}  // namespace ringscan::kernels::cuda
