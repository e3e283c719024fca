// Decode attention for a batch in one launch (attention_decode.h), in the
// manner of flash-decoding: grid (sequence, KV head, split). A block takes the
// G = q_heads / kv_heads query heads that share its KV head (each K/V row is
// loaded once for all of them) and folds its share of the keys in tiles of
// kTile rows staged in shared memory:
//   scores  thread per (head, key): q . k in fp32, times scale;
//   softmax thread per head: tile max, rescale factor, exp, running sum;
//   values  thread per dimension: acc[h, d] = acc * alpha + sum_j p[h, j] v[j, d].
// Its (acc, m, l) goes to the output directly (one split) or to the
// workspace, and attention_decode_merge combines the splits by their
// log-sum-exp: M = max m_s, l = sum l_s e^(m_s - M), acc = sum acc_s e^(m_s - M).
// The split count is a launch constant and each split's key range comes from
// the length read on the device, so a captured graph serves every length.
#include <algorithm>

#include "attention_decode.h"
#include "cuda/cuda_common.cuh"

namespace ringscan::kernels::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kTile = 32;

template <bool kBf16>
__device__ __forceinline__ float load_kv(const void* p, int64_t i) {
  if (kBf16) return __uint_as_float(static_cast<uint32_t>(static_cast<const uint16_t*>(p)[i]) << 16);
  return static_cast<const float*>(p)[i];
}

template <bool kBf16>
__global__ void __launch_bounds__(kThreads)
    attention_decode_kernel(int q_heads, int kv_heads, int hd, const float* q, int64_t ld_q, int64_t batch,
                            const void* const* k_cache, const void* const* v_cache, const int32_t* len, float scale,
                            int splits, float* acc, float* m, float* l, float* part) {
  extern __shared__ float sm[];
  const int G = q_heads / kv_heads;
  float* q_s = sm;                  // [G, hd]
  float* acc_s = q_s + G * hd;      // [G, hd]
  const int hs = hd + 1;            // tile row stride: rows of one warp's score threads in distinct banks
  float* tile = acc_s + G * hd;     // [kTile, hs]: K, then V
  float* p_s = tile + kTile * hs;   // [G, kTile]: scores, then weights
  float* m_s = p_s + G * kTile;     // [G]
  float* l_s = m_s + G;             // [G]
  float* alpha_s = l_s + G;         // [G]
  const int64_t b = blockIdx.x;
  const int kvh = blockIdx.y, sp = blockIdx.z, h0 = kvh * G, tid = threadIdx.x;
  const int64_t kvd = int64_t(kv_heads) * hd;
  const void* kc = k_cache[b];
  const void* vc = v_cache[b];
  const int64_t n = kc ? len[b] : 0;
  const int64_t chunk = (n + splits - 1) / splits;
  const int64_t j0 = min(n, sp * chunk), j1 = min(n, j0 + chunk);

  for (int i = tid; i < G * hd; i += kThreads) {
    q_s[i] = q[b * ld_q + int64_t(h0) * hd + i];
    acc_s[i] = 0.f;
  }
  for (int g = tid; g < G; g += kThreads) m_s[g] = -INFINITY, l_s[g] = 0.f;
  __syncthreads();
  for (int64_t t0 = j0; t0 < j1; t0 += kTile) {
    const int cnt = static_cast<int>(min(int64_t{kTile}, j1 - t0));
    for (int i = tid; i < cnt * hd; i += kThreads)
      tile[(i / hd) * hs + i % hd] = load_kv<kBf16>(kc, (t0 + i / hd) * kvd + int64_t(kvh) * hd + i % hd);
    __syncthreads();
    for (int i = tid; i < G * kTile; i += kThreads) {
      const int g = i / kTile, r = i % kTile;
      if (r >= cnt) continue;
      const float* qg = q_s + g * hd;
      const float* kr = tile + r * hs;
      float dot = 0.f;
      for (int d = 0; d < hd; ++d) dot = fmaf(qg[d], kr[d], dot);
      p_s[i] = dot * scale;
    }
    __syncthreads();
    for (int g = tid; g < G; g += kThreads) {
      float* ps = p_s + g * kTile;
      float mx = m_s[g];
      for (int r = 0; r < cnt; ++r) mx = fmaxf(mx, ps[r]);
      const float alpha = expf(m_s[g] - mx);  // 0 while m was -inf
      float sum = 0.f;
      for (int r = 0; r < cnt; ++r) {
        ps[r] = expf(ps[r] - mx);
        sum += ps[r];
      }
      l_s[g] = l_s[g] * alpha + sum;
      m_s[g] = mx;
      alpha_s[g] = alpha;
    }
    __syncthreads();  // the K tile is no longer read: V may overwrite it
    for (int i = tid; i < cnt * hd; i += kThreads)
      tile[(i / hd) * hs + i % hd] = load_kv<kBf16>(vc, (t0 + i / hd) * kvd + int64_t(kvh) * hd + i % hd);
    __syncthreads();
    for (int d = tid; d < hd; d += kThreads)
      for (int g = 0; g < G; ++g) {
        float a = acc_s[g * hd + d] * alpha_s[g];
        const float* pg = p_s + g * kTile;
        for (int r = 0; r < cnt; ++r) a = fmaf(pg[r], tile[r * hs + d], a);
        acc_s[g * hd + d] = a;
      }
    __syncthreads();
  }
  // Out: the state itself (one split) or this split's partial [split, batch, q_heads, hd + 2].
  for (int i = tid; i < G * hd; i += kThreads) {
    const int g = i / hd, d = i % hd;
    const int64_t row = b * q_heads + h0 + g;
    if (part)
      part[((sp * batch) * q_heads + row) * (hd + 2) + d] = acc_s[i];
    else
      acc[row * hd + d] = acc_s[i];
  }
  for (int g = tid; g < G; g += kThreads) {
    const int64_t row = b * q_heads + h0 + g;
    if (part) {
      float* p = part + ((sp * batch) * q_heads + row) * (hd + 2) + hd;
      p[0] = m_s[g], p[1] = l_s[g];
    } else {
      m[row] = m_s[g], l[row] = l_s[g];
    }
  }
}

// One block per (sequence, query head): the splits' partials merged.
__global__ void __launch_bounds__(kThreads)
    attention_decode_merge(int64_t rows, int hd, int splits, const float* part, float* acc, float* m, float* l) {
  const int64_t row = blockIdx.x;
  const int64_t stride = rows * (hd + 2);
  float M = -INFINITY;
  for (int s = 0; s < splits; ++s) M = fmaxf(M, part[s * stride + row * (hd + 2) + hd]);
  float L = 0.f;
  for (int s = 0; s < splits; ++s) {
    const float* p = part + s * stride + row * (hd + 2);
    if (p[hd] != -INFINITY) L += p[hd + 1] * expf(p[hd] - M);
  }
  for (int d = threadIdx.x; d < hd; d += kThreads) {
    float a = 0.f;
    for (int s = 0; s < splits; ++s) {
      const float* p = part + s * stride + row * (hd + 2);
      if (p[hd] != -INFINITY) a = fmaf(p[d], expf(p[hd] - M), a);
    }
    acc[row * hd + d] = a;
  }
  if (threadIdx.x == 0) m[row] = M, l[row] = L;
}

int64_t smem_bytes(const AttentionShape& s) {
  const int64_t G = s.q_heads / s.kv_heads, hd = s.head_dim;
  return (2 * G * hd + kTile * (hd + 1) + G * kTile + 3 * G) * 4;
}

size_t split_bytes(const AttentionShape& s, int64_t batch) {
  return static_cast<size_t>(batch * s.q_heads * (s.head_dim + 2)) * 4;
}

}  // namespace

void attention_decode(const AttentionShape& s, const float* q, int64_t ld_q, int64_t batch, const void* const* k_cache,
                      const void* const* v_cache, DType kv_dtype, const int32_t* len, float scale, float* acc,
                      float* m, float* l, const Workspace& ws, GpuStream stream) {
  if (s.kv_heads < 1 || s.q_heads % s.kv_heads != 0 || s.head_dim < 1)
    throw std::invalid_argument("cuda::attention_decode: q_heads must be a positive multiple of kv_heads");
  if (kv_dtype != DType::F32 && kv_dtype != DType::BF16)
    throw std::invalid_argument("cuda::attention_decode: the cache dtype must be F32 or BF16");
  const int64_t smem = smem_bytes(s);
  if (smem > 48 * 1024)
    throw std::invalid_argument("cuda::attention_decode: " + std::to_string(s.q_heads / s.kv_heads) +
                                " query heads per KV head of head_dim " + std::to_string(s.head_dim) +
                                " need more than 48 KiB of shared memory");
  if (batch <= 0) return;
  if (batch > 0x7fffffff || s.kv_heads > 65535)
    throw std::invalid_argument("cuda::attention_decode: batch or kv_heads exceeds the grid limit");
  const int splits = std::max<int>(1, std::min<int64_t>(attention_decode_splits(s, batch), ws.bytes / split_bytes(s, batch)));
  float* part = splits > 1 ? static_cast<float*>(ws.data) : nullptr;
  const dim3 grid(static_cast<unsigned>(batch), static_cast<unsigned>(s.kv_heads), static_cast<unsigned>(splits));
  const int qh = static_cast<int>(s.q_heads), kh = static_cast<int>(s.kv_heads), hd = static_cast<int>(s.head_dim);
  if (kv_dtype == DType::BF16)
    attention_decode_kernel<true><<<grid, kThreads, smem, stream>>>(qh, kh, hd, q, ld_q, batch, k_cache, v_cache, len,
                                                                   scale, splits, acc, m, l, part);
  else
    attention_decode_kernel<false><<<grid, kThreads, smem, stream>>>(qh, kh, hd, q, ld_q, batch, k_cache, v_cache,
                                                                    len, scale, splits, acc, m, l, part);
  detail::check_launch("attention_decode");
  if (splits > 1) {
    attention_decode_merge<<<static_cast<unsigned>(batch * s.q_heads), kThreads, 0, stream>>>(batch * s.q_heads, hd,
                                                                                            splits, part, acc, m, l);
    detail::check_launch("attention_decode (merge)");
  }
}

}  // namespace ringscan::kernels::cuda
