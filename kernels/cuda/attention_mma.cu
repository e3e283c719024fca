// Block-wise GQA attention on the tensor cores (bf16 mma.sync m16n8k16, fp32
// accumulation), flash-attention-2 style, with the same running state and
// semantics as attention_block (attention.h); the fp32 SIMT kernel in
// attention.cu stays as its reference.
//
// Work split: grid (row tiles, kv_heads, splits), W = 4 warps (8: a tuning
// choice, set_attention_mma_warps). A CTA owns kBM = 16 W
// packed query rows of one KV head (packed row r = query r / G, head
// g * G + r % G, as in attention.cu), so K/V tiles are read once for the G
// heads sharing them. Warp w owns packed rows 16w .. 16w + 15 (one MMA row
// tile); lane (g, t) = (lane / 4, lane % 4) holds rows 16w + g and 16w + g + 8
// of every fragment (mma.cuh gives the layouts).
// Per key tile of BN keys (64; 32 at head_dim > 128):
//   K and V to shared memory as bf16 (rounded from fp32 if given fp32), rows
//   past the last visible key zero;
//   S = Q K^T: Q's A fragments stay in registers for the whole loop (ldmatrix
//   once), K's B fragments come from ldmatrix on the [key][d] tile;
//   scale, causal mask by positions, online softmax of (m, l) in fp32, the 4
//   lanes of a row group reduced by 2 xor-shuffles;
//   O = O * corr + P V: S's accumulator fragments are exactly P's A fragments
//   (rounded to bf16), V's B fragments come from ldmatrix.trans on [key][d].
// bf16 inputs: the K/V tiles are double-buffered and filled by cp.async
// (CUDA's pipeline primitives, cuda_pipeline.h: 16-byte copies global ->
// shared that bypass registers): tile t + 1's copies are issued before tile
// t is computed and waited for (__pipeline_wait_prior) just before it is
// used, so the loads overlap the mma work. Padding columns and rows past the
// last key are plain zero stores; unaligned or odd-width inputs fall back to
// plain loads into the same buffers. fp32 inputs are rounded to bf16 on the
// way (through registers: no cp.async), one buffer. The tiles' contents, and
// so the results, are the same either way.
// Rows are padded by 8 bf16 (16 bytes) so that the 8 row addresses of an
// ldmatrix fall in different banks. head_dim is padded with zeros to DP = 32,
// 64, 128 or 256 (zero columns add nothing to Q K^T and give zero output columns,
// never stored).
// Split over keys (short queries: decode, small blocks) as in attention.cu, with
// the partials in the caller's workspace; without room there, no split.
//
// Numerics: Q, K, V and P are rounded to bf16 (relative error <= 2^-8 each); dot
// products, softmax statistics and the accumulator are fp32. l sums the fp32
// weights, O the bf16-rounded ones (as flash-attention does). Error bounds:
// tests/kernels_cuda/test_attention_mma_cuda.cpp.
#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <string>

#include "attention.h"
#include "cuda/attention_common.cuh"
#include "cuda/cuda_common.cuh"
#include "cuda/mma.cuh"
#include <cuda_pipeline.h>

namespace ringscan::kernels::cuda {
namespace {

constexpr float kLog2e = 1.4426950408889634f;

// W warps per CTA (4 or 8: set_attention_mma_warps), each 16 packed query rows;
// K/V buffers: 2 for bf16 inputs (cp.async double buffer), 1 for fp32.
template <int DP, int W, class Tin>
struct MmaTile {
  static constexpr int kStages = sizeof(Tin) == 2 ? 2 : 1;
  static constexpr int kThreads = 32 * W;
  static constexpr int kBM = 16 * W;              // packed query rows per CTA
  static constexpr int BN = DP <= 128 ? 64 : 32;  // keys per tile
  static constexpr int SR = DP + 8;               // shared-memory row, in bf16
  static constexpr size_t smem_bytes = size_t(kBM + 2 * kStages * BN) * SR * 2;
};

std::atomic<int> g_warps{0};  // 0: not chosen yet (RINGSCAN_ATTN_WARPS, else 4)

int warps_per_cta() {
  int w = g_warps.load(std::memory_order_relaxed);
  if (w == 0) {
    const char* e = std::getenv("RINGSCAN_ATTN_WARPS");
    w = e && std::string(e) == "8" ? 8 : 4;
    g_warps.store(w, std::memory_order_relaxed);
  }
  return w;
}

__device__ __forceinline__ uint16_t bf16_bits(float x) { return __bfloat16_as_ushort(__float2bfloat16_rn(x)); }
__device__ __forceinline__ uint16_t bf16_bits(__nv_bfloat16 x) { return __bfloat16_as_ushort(x); }

// Elements [c, c + 8) of one row (src: the row's start, D elements) to
// shared memory as bf16, zeros past D (src null: a row of zeros).
template <class Tin>
__device__ __forceinline__ void stage8(__nv_bfloat16* dst, const Tin* src, int c, int D, bool vec) {
  uint16_t e[8];
  if (src && vec && c < D) {  // then c + 8 <= D (vec: D % 8 == 0), 16-byte aligned
    if constexpr (sizeof(Tin) == 4) {
      const float4 x0 = *reinterpret_cast<const float4*>(src + c);
      const float4 x1 = *reinterpret_cast<const float4*>(src + c + 4);
      e[0] = bf16_bits(x0.x), e[1] = bf16_bits(x0.y), e[2] = bf16_bits(x0.z), e[3] = bf16_bits(x0.w);
      e[4] = bf16_bits(x1.x), e[5] = bf16_bits(x1.y), e[6] = bf16_bits(x1.z), e[7] = bf16_bits(x1.w);
    } else {
      *reinterpret_cast<uint4*>(dst + c) = *reinterpret_cast<const uint4*>(src + c);
      return;
    }
  } else {
#pragma unroll
    for (int i = 0; i < 8; ++i) e[i] = src && c + i < D ? bf16_bits(src[c + i]) : uint16_t{0};
  }
  uint4 w;
  w.x = e[0] | uint32_t(e[1]) << 16, w.y = e[2] | uint32_t(e[3]) << 16;
  w.z = e[4] | uint32_t(e[5]) << 16, w.w = e[6] | uint32_t(e[7]) << 16;
  *reinterpret_cast<uint4*>(dst + c) = w;
}

template <int DP, class Tin, int W>
__global__ void __launch_bounds__(32 * W) attention_mma_kernel(AttentionArgs a) {
  constexpr int BN = MmaTile<DP, W, Tin>::BN, SR = MmaTile<DP, W, Tin>::SR;
  constexpr int kBM = MmaTile<DP, W, Tin>::kBM, kThreads = MmaTile<DP, W, Tin>::kThreads;
  constexpr int NT = BN / 8;  // score n-tiles (8 keys each)
  constexpr int KD = DP / 16; // k steps over head_dim
  constexpr int OT = DP / 8;  // output n-tiles (8 columns each)
  constexpr int C8 = DP / 8;  // 8-element chunks per staged row
  extern __shared__ uint4 smem_u4[];                                // 16-byte aligned
  __nv_bfloat16* Qs = reinterpret_cast<__nv_bfloat16*>(smem_u4);   // [kBM][SR]
  constexpr int kStages = MmaTile<DP, W, Tin>::kStages;
  __nv_bfloat16* Ks = Qs + kBM * SR;                                // [kStages][BN][SR]
  __nv_bfloat16* Vs = Ks + kStages * BN * SR;                       // [kStages][BN][SR]

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, gq = lane >> 2, t4 = lane & 3;
  const int g = blockIdx.y;  // KV head
  const bool split = a.pacc != nullptr;
  const int64_t R = a.lq * a.G;
  // Under causal masking later row tiles see more keys: start those first.
  const int64_t r0 = static_cast<int64_t>(gridDim.x - 1 - blockIdx.x) * kBM;

  // This lane's two rows (h = 0: 16w + gq, h = 1: + 8): state index and visible keys.
  int64_t srow[2];
  int lo[2], hi[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) packed_row(a, g, r0 + 16 * warp + gq + 8 * h, srow[h], lo[h], hi[h]);
  int k_lo, k_hi;
  key_range(a, r0, kBM, k_lo, k_hi);
  const int tile0 = k_lo / BN;  // varlen: the tiles of earlier sequences are skipped
  const int n_tiles = k_hi > k_lo ? (k_hi + BN - 1) / BN - tile0 : 0;
  int t_begin, t_end;
  tile_range(n_tiles, split, a.tiles_per_split, t_begin, t_end);
  if (!split && t_begin >= t_end) return;  // nothing visible: the state stays (uniform per CTA)

  float m_r[2], l_r[2], o[OT][4];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    m_r[h] = -INFINITY;
    l_r[h] = 0.f;
  }
#pragma unroll
  for (int dt = 0; dt < OT; ++dt)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[dt][e] = 0.f;
  if (!split) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      if (srow[h] < 0) continue;
      m_r[h] = a.m[srow[h]];
      l_r[h] = a.l[srow[h]];
#pragma unroll
      for (int dt = 0; dt < OT; ++dt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int d = 8 * dt + 2 * t4 + e;
          if (d < a.D) o[dt][2 * h + e] = a.acc[srow[h] * a.D + d];
        }
    }
  }

  // Q tile (bf16, zero rows past the last), then this warp's A fragments.
  const Tin* q = static_cast<const Tin*>(a.q);
  for (int idx = tid; idx < kBM * C8; idx += kThreads) {
    const int r = idx / C8, c = (idx % C8) * 8;
    const int64_t pr = r0 + r;
    const Tin* src = pr < R ? q + (pr / a.G) * a.ld_q + static_cast<int64_t>(g * a.G + pr % a.G) * a.D : nullptr;
    stage8(Qs + r * SR, src, c, a.D, a.vec);
  }
  const Tin* kbase = static_cast<const Tin*>(a.k) + static_cast<int64_t>(g) * a.D;
  const Tin* vbase = static_cast<const Tin*>(a.v) + static_cast<int64_t>(g) * a.D;
  // Key tile `tile` into K/V buffer `buf`, rows past the last visible key zero:
  // cp.async where it can (bf16, 16-byte aligned chunks inside head_dim),
  // plain stores otherwise; with cp.async, one commit group per tile.
  auto stage_kv = [&](int tile, int buf) {
    const int j0 = (tile0 + tile) * BN;
    const int nk = min(BN, k_hi - j0);
    __nv_bfloat16* kd = Ks + buf * BN * SR;
    __nv_bfloat16* vd = Vs + buf * BN * SR;
    for (int idx = tid; idx < BN * C8; idx += kThreads) {
      const int r = idx / C8, c = (idx % C8) * 8;
      const bool real = r < nk;
      const Tin* ks = real ? kbase + static_cast<int64_t>(j0 + r) * a.ld_k : nullptr;
      const Tin* vs = real ? vbase + static_cast<int64_t>(j0 + r) * a.ld_v : nullptr;
      if constexpr (kStages == 2) {
        if (real && a.vec && c < a.D) {
          __pipeline_memcpy_async(kd + r * SR + c, ks + c, 16);
          __pipeline_memcpy_async(vd + r * SR + c, vs + c, 16);
          continue;
        }
      }
      stage8(kd + r * SR, ks, c, a.D, a.vec);
      stage8(vd + r * SR, vs, c, a.D, a.vec);
    }
    if constexpr (kStages == 2) __pipeline_commit();
  };
  // The first tile's copies fly while Q's fragments are loaded.
  if constexpr (kStages == 2)
    if (t_begin < t_end) stage_kv(t_begin, 0);
  __syncthreads();
  uint32_t qf[KD][4];
  {
    const int row = 16 * warp + (lane & 7) + ((lane >> 3) & 1) * 8, col = (lane >> 4) * 8;
#pragma unroll
    for (int kk = 0; kk < KD; ++kk) mma::ldmatrix_x4(qf[kk], Qs + row * SR + kk * 16 + col);
  }

  // Warps whose 16 rows are all past the last skip the arithmetic (uniform per warp).
  const bool warp_active = r0 + 16 * warp < R;

  for (int tile = t_begin; tile < t_end; ++tile) {
    const int j0 = (tile0 + tile) * BN;
    const int buf = kStages == 2 ? (tile - t_begin) & 1 : 0;
    __syncthreads();  // the previous tile's fragments are read: its buffer may be refilled
    if constexpr (kStages == 1) {
      stage_kv(tile, 0);
    } else if (tile + 1 < t_end) {
      stage_kv(tile + 1, buf ^ 1);  // in flight during this tile's mma work
      __pipeline_wait_prior(1);     // this tile's group has landed (this thread's copies)
    } else {
      __pipeline_wait_prior(0);
    }
    __syncthreads();  // every thread's copies and stores of this tile are visible
    if (!warp_active) continue;
    const __nv_bfloat16* Kt = Ks + buf * BN * SR;
    const __nv_bfloat16* Vt = Vs + buf * BN * SR;

    // S = Q K^T: ldmatrix x4 on 8 keys x 32 columns gives B for two k steps.
    float s[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) s[nt][e] = 0.f;
#pragma unroll
      for (int kk = 0; kk < KD; kk += 2) {
        uint32_t kb[4];
        mma::ldmatrix_x4(kb, Kt + (8 * nt + (lane & 7)) * SR + kk * 16 + (lane >> 3) * 8);
        const uint32_t b0[2] = {kb[0], kb[1]}, b1[2] = {kb[2], kb[3]};
        mma::mma_bf16_16816(s[nt], qf[kk], b0);
        mma::mma_bf16_16816(s[nt], qf[kk + 1], b1);
      }
    }

    // Online softmax per row (the row's 4 lanes: xor 1 and 2).
    float corr[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float mx = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int j = j0 + 8 * nt + 2 * t4 + e;
          const bool visible = j >= lo[h] && j < hi[h];
          float& x = s[nt][2 * h + e];
          x = visible ? x * a.scale : -INFINITY;
          mx = fmaxf(mx, x);
        }
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const bool any = mx != -INFINITY;
      const float m_new = fmaxf(m_r[h], mx);
      corr[h] = any ? exp2f((m_r[h] - m_new) * kLog2e) : 1.f;  // exp2f(-inf) = 0 clears an empty state
      float sum = 0.f;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          float& x = s[nt][2 * h + e];
          x = x == -INFINITY ? 0.f : exp2f((x - m_new) * kLog2e);
          sum += x;
        }
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      if (any) {
        l_r[h] = l_r[h] * corr[h] + sum;
        m_r[h] = m_new;
      }
    }

    // O = O * corr + P V.
#pragma unroll
    for (int dt = 0; dt < OT; ++dt) {
      o[dt][0] *= corr[0], o[dt][1] *= corr[0];
      o[dt][2] *= corr[1], o[dt][3] *= corr[1];
    }
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      const uint32_t pa[4] = {mma::pack_bf16x2(s[2 * kk][0], s[2 * kk][1]),
                              mma::pack_bf16x2(s[2 * kk][2], s[2 * kk][3]),
                              mma::pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              mma::pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
      const __nv_bfloat16* vrow = Vt + (16 * kk + ((lane >> 3) & 1) * 8 + (lane & 7)) * SR + (lane >> 4) * 8;
#pragma unroll
      for (int dt = 0; dt < OT; dt += 2) {
        uint32_t vb[4];
        mma::ldmatrix_x4_trans(vb, vrow + 8 * dt);
        const uint32_t b0[2] = {vb[0], vb[1]}, b1[2] = {vb[2], vb[3]};
        mma::mma_bf16_16816(o[dt], pa, b0);
        mma::mma_bf16_16816(o[dt + 1], pa, b1);
      }
    }
  }

  // The state (or this split's partial) back.
  const int64_t rows = a.lq * a.H;
  float* out_m = split ? a.pm + blockIdx.z * rows : a.m;
  float* out_l = split ? a.pl + blockIdx.z * rows : a.l;
  float* out_acc = split ? a.pacc + blockIdx.z * rows * a.D : a.acc;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    if (srow[h] < 0) continue;
    if (t4 == 0) {
      out_m[srow[h]] = m_r[h];
      out_l[srow[h]] = l_r[h];
    }
#pragma unroll
    for (int dt = 0; dt < OT; ++dt)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int d = 8 * dt + 2 * t4 + e;
        if (d < a.D) out_acc[srow[h] * a.D + d] = o[dt][2 * h + e];
      }
  }
}

int64_t row_tiles_of(const AttentionShape& s, int64_t lq) {
  const int64_t bm = 16 * warps_per_cta();
  return (lq * (s.q_heads / s.kv_heads) + bm - 1) / bm;
}

int padded_dim(int64_t head_dim) { return head_dim <= 32 ? 32 : head_dim <= 64 ? 64 : head_dim <= 128 ? 128 : 256; }

template <int DP, class Tin, int W>
void launch_mma(AttentionArgs a, int64_t row_tiles, int kv_heads, const Workspace& ws, cudaStream_t stream) {
  constexpr int BN = MmaTile<DP, W, Tin>::BN;
  static std::atomic<uint64_t> smem_allowed{0};  // above the 48 KB default: raised once per device
  allow_smem_once(attention_mma_kernel<DP, Tin, W>, static_cast<int>(MmaTile<DP, W, Tin>::smem_bytes), smem_allowed,
                  "attention_block_mma");
  // Varlen never splits (its rows see only their own sequence's keys).
  const int64_t room =
      ws.data && !a.seq ? static_cast<int64_t>(ws.bytes) / split_partials_bytes(1, a.lq * a.H, a.D) : 0;
  const int64_t splits = choose_key_splits(row_tiles * kv_heads, (a.lk + BN - 1) / BN,
                                           std::min<int64_t>(kMaxSplits, std::max<int64_t>(room, 1)),
                                           &a.tiles_per_split);
  const dim3 grid(static_cast<unsigned>(row_tiles), static_cast<unsigned>(kv_heads), static_cast<unsigned>(splits));
  if (splits > 1) carve_split_partials(a, ws.data, splits);
  attention_mma_kernel<DP, Tin, W><<<grid, MmaTile<DP, W, Tin>::kThreads, MmaTile<DP, W, Tin>::smem_bytes, stream>>>(a);
  detail::check_launch("attention_block_mma");
  if (splits > 1) launch_combine_splits(a, splits, stream);
}

template <class Tin, int W>
void dispatch_dim(const AttentionArgs& a, int64_t row_tiles, int kvh, const Workspace& ws, cudaStream_t st) {
  switch (padded_dim(a.D)) {
    case 32: return launch_mma<32, Tin, W>(a, row_tiles, kvh, ws, st);
    case 64: return launch_mma<64, Tin, W>(a, row_tiles, kvh, ws, st);
    case 128: return launch_mma<128, Tin, W>(a, row_tiles, kvh, ws, st);
    default: return launch_mma<256, Tin, W>(a, row_tiles, kvh, ws, st);
  }
}

template <class Tin>
void dispatch_warps(const AttentionArgs& a, int64_t row_tiles, int kvh, const Workspace& ws, cudaStream_t st) {
  if (warps_per_cta() == 8)
    dispatch_dim<Tin, 8>(a, row_tiles, kvh, ws, st);
  else
    dispatch_dim<Tin, 4>(a, row_tiles, kvh, ws, st);
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// 16-byte loads when every row and base allows them, then the kernel for the dtype.
void dispatch_dtype(AttentionArgs a, const AttentionShape& s, DType dtype, const Workspace& ws, cudaStream_t stream) {
  const int64_t row_tiles = row_tiles_of(s, a.lq);
  if (row_tiles > INT_MAX) throw std::invalid_argument("cuda::attention_block_mma: lq too large");
  const int64_t per16 = dtype == DType::F32 ? 4 : 8;  // elements per 16 bytes
  a.vec = s.head_dim % 8 == 0 && a.ld_q % per16 == 0 && a.ld_k % per16 == 0 && a.ld_v % per16 == 0 &&
          aligned16(a.q) && aligned16(a.k) && aligned16(a.v);
  const int kvh = static_cast<int>(s.kv_heads);
  if (dtype == DType::F32)
    dispatch_warps<float>(a, row_tiles, kvh, ws, stream);
  else
    dispatch_warps<__nv_bfloat16>(a, row_tiles, kvh, ws, stream);
}

}  // namespace

size_t attention_block_mma_workspace(const AttentionShape& s, int64_t lq, int64_t lk) {
  check_attention_shape(s, "attention_block_mma_workspace");
  if (lq <= 0 || lk <= 0) return 0;
  // Splits happen only when the CTAs do not fill the GPU; room for the most.
  if (row_tiles_of(s, lq) * s.kv_heads >= current_sm_count()) return 0;
  return static_cast<size_t>(split_partials_bytes(kMaxSplits, lq * s.q_heads, s.head_dim));
}

void attention_block_mma(const AttentionShape& s, DType dtype, const void* q, int64_t ld_q, int64_t lq, int64_t q_pos0,
                         const void* k, int64_t ld_k, const void* v, int64_t ld_v, int64_t lk, int64_t k_pos0,
                         float scale, bool causal, float* acc, float* m, float* l, const Workspace& ws,
                         GpuStream stream) {
  if (dtype != DType::F32 && dtype != DType::BF16)
    throw std::invalid_argument("cuda::attention_block_mma: q, k and v must be F32 or BF16");
  AttentionArgs a;
  if (!make_attention_args("attention_block_mma", s, q, ld_q, lq, q_pos0, k, ld_k, v, ld_v, lk, k_pos0, scale, causal,
                           acc, m, l, &a))
    return;
  dispatch_dtype(a, s, dtype, ws, stream);
}

void attention_varlen_mma(const AttentionShape& s, DType dtype, const void* q, int64_t ld_q, const void* k,
                          int64_t ld_k, const void* v, int64_t ld_v, int64_t rows, const int32_t* seq_idx, float scale,
                          bool causal, float* acc, float* m, float* l, GpuStream stream) {
  if (dtype != DType::F32 && dtype != DType::BF16)
    throw std::invalid_argument("cuda::attention_varlen_mma: q, k and v must be F32 or BF16");
  AttentionArgs a;
  if (!make_attention_args("attention_varlen_mma", s, q, ld_q, rows, 0, k, ld_k, v, ld_v, rows, 0, scale, causal, acc,
                           m, l, &a))
    return;
  if (!seq_idx) throw std::invalid_argument("cuda::attention_varlen_mma: seq_idx is required");
  a.seq = seq_idx;
  dispatch_dtype(a, s, dtype, Workspace{}, stream);
}

void set_attention_mma_warps(int warps) {
  if (warps != 4 && warps != 8) throw std::invalid_argument("cuda::set_attention_mma_warps: 4 or 8");
  g_warps.store(warps, std::memory_order_relaxed);
}

}  // namespace ringscan::kernels::cuda
