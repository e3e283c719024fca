// Block-wise GQA attention with the online softmax on the GPU, flash-attention
// style: one fused kernel computes scores, the softmax update and P V for a
// tile of query rows without writing scores to global memory.
//
// This version is fp32 SIMT (plain FMAs, no tensor cores): the inputs and the
// state are fp32 and the products are exact fp32 products, as on the CPU. A
// tensor-core (TF32/bf16 mma) version is a later, measured decision.
//
// Work split (attention_block):
//   grid (row tiles, kv_heads, splits), 256 threads.
//   A CTA owns kBM = 64 "packed" query rows of one KV head g: packed row r is
//   query row r / G of head g * G + r % G (G = q_heads / kv_heads), so the G
//   heads that share K/V read each K/V tile from global memory once.
//   Thread (ty = tid / 16, tx = tid % 16) owns packed rows ty * 4 .. ty * 4 + 3
//   (its m, l and accumulator columns tx, tx + 16, ... stay in registers for the
//   whole key loop); the 16 threads of a row group are 16 consecutive lanes, so
//   row max / row sum are 4 xor-shuffles.
//   Per key tile of BN keys (64; 32 when head_dim > 128 to fit shared memory):
//     load K and V tiles to shared memory (zeros past the last visible key);
//     S = Q K^T (each thread 4 rows x BN/16 keys, keys tx + 16 c);
//     scale, causal mask by positions, online softmax update of (m, l);
//     P to shared memory (in K's place), acc = acc * corr + P V.
//   Key tiles past the last key the CTA's last row can see are never loaded
//   (causal skip); rows that see no key of a tile keep their state exactly.
//   The state (acc, m, l) is read at the start and written back at the end: the
//   API carries it across calls (ring attention, several key blocks).
// Split over keys (decode: lq = 1 gives a handful of CTAs): when the row tiles
//   x KV heads do not fill the GPU and the block has many keys, grid.z splits
//   the key tiles; each split writes a partial (acc, m, l) started from empty
//   to a scratch buffer (stream-ordered cudaMallocAsync), and a second kernel
//   merges the partials into the state in split order (deterministic).
//
// Shared memory (floats): Q [64][SD] + max(K [BN][SD], P [64][BN+1]) + V [BN][DP]
// with SD = head_dim rounded up to odd (conflict-free column reads of Q and K)
// and DP = head_dim rounded up to 16, 32, 64, 128 or 256 (the template width).
// head_dim 128: 98.8 KB (2 CTAs per SM on H100/H200); 256: 131.5 KB (fits the
// 163 KB of sm_80 too).
// Registers: 4 x DP/16 accumulators (32 at head_dim 128, 64 at 256), 4 x BN/16
// scores and weights, 4 (m, l, corr) per thread.
//
// Numerics (matching the reference's semantics, see attention.h): m is the
// running max of SCALED scores (dot * scale, the scale not folded into q), -inf
// while none seen; a row with no visible key stays m = -inf, l = 0, acc = 0 and
// finalizes to zeros. exp(s - m) is exp2f((s - m) * log2(e)) (<= 2 ulp +
// the rounding of the product); dot products are fp32 FMA chains over
// head_dim; l and acc are fp32 sums over key tiles. Against the reference's
// double precision: see tests/kernels_cuda/test_attention_cuda.cpp.
#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>

#include "attention.h"
#include "cuda/attention_common.cuh"
#include "cuda/cuda_common.cuh"

namespace ringscan::kernels::cuda {
namespace {

constexpr int kThreads = 256;  // 16 row groups x 16 lanes
constexpr int kTM = 4;         // packed query rows per thread
constexpr int kBM = 16 * kTM;  // packed query rows per CTA
constexpr float kLog2e = 1.4426950408889634f;

template <int DP>
struct Tile {
  static constexpr int BN = DP <= 128 ? 64 : 32;  // keys per tile
  static constexpr int TN = BN / 16;              // scores per thread and row
  static constexpr int CPT = DP / 16;             // accumulator columns per thread and row
};

// Shared memory of one CTA, in floats (layout in the header comment).
int64_t smem_floats(int BN, int DP, int D) {
  const int64_t SD = D | 1;
  return kBM * SD + std::max<int64_t>(BN * SD, int64_t{kBM} * (BN + 1)) + int64_t{BN} * DP;
}

template <int DP>
__global__ void __launch_bounds__(kThreads) attention_block_kernel(AttentionArgs a) {
  constexpr int BN = Tile<DP>::BN, TN = Tile<DP>::TN, CPT = Tile<DP>::CPT;
  extern __shared__ float smem[];
  const int D = a.D, SD = D | 1;
  float* Qs = smem;                                           // [kBM][SD]
  float* Ks = Qs + kBM * SD;                                  // [BN][SD]
  float* Ps = Ks;                                             // [kBM][BN + 1], after S is done
  float* Vs = Ks + (BN * SD > kBM * (BN + 1) ? BN * SD : kBM * (BN + 1));  // [BN][DP]

  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4, warp = tid >> 5, lane = tid & 31;
  const int g = blockIdx.y;  // KV head
  const bool split = a.pacc != nullptr;
  const int64_t R = a.lq * a.G;  // packed rows of this KV head
  // Under causal masking later row tiles see more keys: start those first.
  const int64_t r0 = static_cast<int64_t>(gridDim.x - 1 - blockIdx.x) * kBM;

  // The thread's rows: state index (i * H + h, or -1 past the last row) and
  // the keys visible to it (keys [lo, hi) of this block).
  int64_t srow[kTM];
  int lo[kTM], hi[kTM];
#pragma unroll
  for (int t = 0; t < kTM; ++t) packed_row(a, g, r0 + ty * kTM + t, srow[t], lo[t], hi[t]);
  int k_lo, k_hi;
  key_range(a, r0, kBM, k_lo, k_hi);
  const int tile0 = k_lo / BN;  // varlen: the tiles of earlier sequences are skipped
  const int n_tiles = k_hi > k_lo ? (k_hi + BN - 1) / BN - tile0 : 0;
  int t_begin, t_end;
  tile_range(n_tiles, split, a.tiles_per_split, t_begin, t_end);
  // Nothing visible: the state stays as it is (a split still writes its empty partial).
  if (!split && t_begin >= t_end) return;

  float m_r[kTM], l_r[kTM], o[kTM][CPT];
#pragma unroll
  for (int t = 0; t < kTM; ++t) {
    m_r[t] = -INFINITY;
    l_r[t] = 0.f;
#pragma unroll
    for (int c = 0; c < CPT; ++c) o[t][c] = 0.f;
    if (!split && srow[t] >= 0) {
      m_r[t] = a.m[srow[t]];
      l_r[t] = a.l[srow[t]];
#pragma unroll
      for (int c = 0; c < CPT; ++c) {
        const int d = tx + 16 * c;
        if (d < D) o[t][c] = a.acc[srow[t] * D + d];
      }
    }
  }

  // Q tile: one warp per row, lanes along head_dim (coalesced for any ld_q);
  // rows past the last are zeros. Made visible by the first tile's barrier.
  for (int r = warp; r < kBM; r += kThreads / 32) {
    const int64_t pr = r0 + r;
    float* dst = Qs + r * SD;
    if (pr < R) {
      const float* src = static_cast<const float*>(a.q) + (pr / a.G) * a.ld_q +
                         static_cast<int64_t>(g * a.G + pr % a.G) * D;
      for (int d = lane; d < D; d += 32) dst[d] = src[d];
    } else {
      for (int d = lane; d < D; d += 32) dst[d] = 0.f;
    }
  }

  // Warps whose 8 rows are all past the last row skip the arithmetic (decode:
  // 1 query x G heads fills only the first warp). Uniform per warp, so the
  // row-group shuffles below always run with the whole warp.
  const bool warp_active = r0 + 8 * warp < R;
  const float* kbase = static_cast<const float*>(a.k) + static_cast<int64_t>(g) * D;
  const float* vbase = static_cast<const float*>(a.v) + static_cast<int64_t>(g) * D;

  for (int tile = t_begin; tile < t_end; ++tile) {
    const int j0 = (tile0 + tile) * BN;
    const int nk = min(BN, k_hi - j0);  // keys of this tile up to the last some row can see (>= 1)
    // K and V tiles; rows past nk are zeros (never visible, and a zero V keeps
    // 0 * V finite), V columns past head_dim are zeros.
    for (int j = warp; j < BN; j += kThreads / 32) {
      float* kd = Ks + j * SD;
      float* vd = Vs + j * DP;
      if (j < nk) {
        const float* ks = kbase + static_cast<int64_t>(j0 + j) * a.ld_k;
        const float* vs = vbase + static_cast<int64_t>(j0 + j) * a.ld_v;
        for (int d = lane; d < D; d += 32) {
          kd[d] = ks[d];
          vd[d] = vs[d];
        }
        for (int d = D + lane; d < DP; d += 32) vd[d] = 0.f;
      } else {
        for (int d = lane; d < D; d += 32) kd[d] = 0.f;
        for (int d = lane; d < DP; d += 32) vd[d] = 0.f;
      }
    }
    __syncthreads();

    float p[kTM][TN], corr[kTM];
    if (warp_active) {
      float s[kTM][TN];
#pragma unroll
      for (int t = 0; t < kTM; ++t)
#pragma unroll
        for (int c = 0; c < TN; ++c) s[t][c] = 0.f;
      const float* qrow = Qs + ty * kTM * SD;
#pragma unroll 4
      for (int d = 0; d < D; ++d) {
        float qv[kTM], kv[TN];
#pragma unroll
        for (int t = 0; t < kTM; ++t) qv[t] = qrow[t * SD + d];
#pragma unroll
        for (int c = 0; c < TN; ++c) kv[c] = Ks[(tx + 16 * c) * SD + d];
#pragma unroll
        for (int t = 0; t < kTM; ++t)
#pragma unroll
          for (int c = 0; c < TN; ++c) s[t][c] = fmaf(qv[t], kv[c], s[t][c]);
      }
#pragma unroll
      for (int t = 0; t < kTM; ++t) {
        float mx = -INFINITY;
#pragma unroll
        for (int c = 0; c < TN; ++c) {
          const int j = j0 + tx + 16 * c;
          const bool visible = j >= lo[t] && j < hi[t];
          s[t][c] = visible ? s[t][c] * a.scale : -INFINITY;
          mx = fmaxf(mx, s[t][c]);
        }
        // Row max over the 16 lanes of the row group (xor < 16 stays inside it).
#pragma unroll
        for (int off = 8; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
        const bool any = mx != -INFINITY;  // the row sees a key of this tile
        const float m_new = fmaxf(m_r[t], mx);
        // exp2f(-inf) = 0 clears an empty state (m = -inf, l = 0, acc = 0).
        corr[t] = any ? exp2f((m_r[t] - m_new) * kLog2e) : 1.f;
        float sum = 0.f;
#pragma unroll
        for (int c = 0; c < TN; ++c) {
          p[t][c] = s[t][c] == -INFINITY ? 0.f : exp2f((s[t][c] - m_new) * kLog2e);
          sum += p[t][c];
        }
        // Butterfly sum: a + b == b + a, so all 16 lanes get the same value.
#pragma unroll
        for (int off = 8; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
        if (any) {
          l_r[t] = l_r[t] * corr[t] + sum;
          m_r[t] = m_new;
        }
      }
    }
    __syncthreads();  // every warp is done reading Ks: P may take its place
    if (warp_active) {
#pragma unroll
      for (int t = 0; t < kTM; ++t)
#pragma unroll
        for (int c = 0; c < TN; ++c) Ps[(ty * kTM + t) * (BN + 1) + tx + 16 * c] = p[t][c];
    }
    __syncthreads();
    if (warp_active) {
#pragma unroll
      for (int t = 0; t < kTM; ++t)
#pragma unroll
        for (int c = 0; c < CPT; ++c) o[t][c] *= corr[t];
      const float* prow = Ps + ty * kTM * (BN + 1);
#pragma unroll 4
      for (int j = 0; j < nk; ++j) {
        float pv[kTM], vv[CPT];
#pragma unroll
        for (int t = 0; t < kTM; ++t) pv[t] = prow[t * (BN + 1) + j];
#pragma unroll
        for (int c = 0; c < CPT; ++c) vv[c] = Vs[j * DP + tx + 16 * c];
#pragma unroll
        for (int t = 0; t < kTM; ++t)
#pragma unroll
          for (int c = 0; c < CPT; ++c) o[t][c] = fmaf(pv[t], vv[c], o[t][c]);
      }
    }
    __syncthreads();  // before the next tile's loads overwrite Ks / Ps and Vs
  }

  // Write the state (or this split's partial) back.
  const int64_t rows = a.lq * a.H;
  float* out_m = split ? a.pm + blockIdx.z * rows : a.m;
  float* out_l = split ? a.pl + blockIdx.z * rows : a.l;
  float* out_acc = split ? a.pacc + blockIdx.z * rows * D : a.acc;
#pragma unroll
  for (int t = 0; t < kTM; ++t) {
    if (srow[t] < 0) continue;
    if (tx == 0) {
      out_m[srow[t]] = m_r[t];
      out_l[srow[t]] = l_r[t];
    }
#pragma unroll
    for (int c = 0; c < CPT; ++c) {
      const int d = tx + 16 * c;
      if (d < D) out_acc[srow[t] * D + d] = o[t][c];
    }
  }
}

__global__ void init_kernel(int64_t rows, int64_t D, float* acc, float* m, float* l) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < rows * D; i += stride) {
    acc[i] = 0.f;
    if (i < rows) {
      m[i] = -INFINITY;
      l[i] = 0.f;
    }
  }
}

// One warp per state row: every lane reads m and m2 before lane 0 rewrites m.
__global__ void merge_kernel(int64_t rows, int D, const float* acc2, const float* m2,
                             const float* l2, float* acc, float* m, float* l) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x / 32) + threadIdx.x / 32; r < rows;
       r += warps) {
    const float ma = m[r], mb = m2[r], m_new = fmaxf(ma, mb);
    if (m_new == -INFINITY) continue;  // neither side has seen a key (uniform over the warp)
    const float w1 = expf(ma - m_new), w2 = expf(mb - m_new);
    for (int d = lane; d < D; d += 32) acc[r * D + d] = acc[r * D + d] * w1 + acc2[r * D + d] * w2;
    const float l_new = l[r] * w1 + l2[r] * w2;
    __syncwarp();
    if (lane == 0) {
      l[r] = l_new;
      m[r] = m_new;
    }
  }
}

template <class Out>
__global__ void finalize_kernel(int64_t lq, int H, int D, const float* acc, const float* l,
                                Out* out, int64_t ld_out) {
  const int64_t n = lq * H * D, stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < n; e += stride) {
    const int64_t r = e / D, i = r / H;
    const int64_t col = e - i * H * D;  // h * D + d
    const float lr = l[r];
    detail::store_as(&out[i * ld_out + col], lr > 0.f ? acc[e] / lr : 0.f);  // no visible key: zeros
  }
}

template <int DP>
void launch_block(AttentionArgs a, int64_t row_tiles, int kv_heads, cudaStream_t stream) {
  constexpr int BN = Tile<DP>::BN;
  const size_t smem = static_cast<size_t>(smem_floats(BN, DP, a.D)) * sizeof(float);
  // The limit for the widest head_dim of this template width, raised once per device.
  static std::atomic<uint64_t> smem_allowed{0};
  allow_smem_once(attention_block_kernel<DP>, static_cast<int>(smem_floats(BN, DP, DP) * sizeof(float)), smem_allowed,
                  "attention_block");

  // Split the keys when the CTAs do not fill the GPU (decode, short queries;
  // never varlen, whose rows see only their own sequence's keys).
  const int64_t splits =
      a.seq ? 1 : choose_key_splits(row_tiles * kv_heads, (a.lk + BN - 1) / BN, kMaxSplits, &a.tiles_per_split);

  const dim3 grid(static_cast<unsigned>(row_tiles), static_cast<unsigned>(kv_heads),
                  static_cast<unsigned>(splits));
  if (splits == 1) {
    a.pacc = a.pm = a.pl = nullptr;
    attention_block_kernel<DP><<<grid, kThreads, smem, stream>>>(a);
    detail::check_launch("attention_block");
    return;
  }
  void* scratch = nullptr;
  // Stream-ordered on `stream`: freed after the combine runs. (Allocates: the
  // fp32 reference and decode path; attention_block_mma takes caller workspace.)
  detail::check_cuda(cudaMallocAsync(&scratch, static_cast<size_t>(split_partials_bytes(splits, a.lq * a.H, a.D)), stream),
                     "attention_block", "cudaMallocAsync");
  carve_split_partials(a, scratch, splits);
  attention_block_kernel<DP><<<grid, kThreads, smem, stream>>>(a);
  detail::check_launch("attention_block");
  launch_combine_splits(a, splits, stream);
  detail::check_cuda(cudaFreeAsync(scratch, stream), "attention_block", "cudaFreeAsync");
}

void dispatch_block(const AttentionArgs& a, const AttentionShape& s, cudaStream_t stream) {
  const int64_t row_tiles = (a.lq * a.G + kBM - 1) / kBM;
  if (row_tiles > INT_MAX) throw std::invalid_argument("cuda::attention_block: lq too large");
  const int kvh = static_cast<int>(s.kv_heads);
  if (s.head_dim <= 16) launch_block<16>(a, row_tiles, kvh, stream);
  else if (s.head_dim <= 32) launch_block<32>(a, row_tiles, kvh, stream);
  else if (s.head_dim <= 64) launch_block<64>(a, row_tiles, kvh, stream);
  else if (s.head_dim <= 128) launch_block<128>(a, row_tiles, kvh, stream);
  else launch_block<256>(a, row_tiles, kvh, stream);
}

}  // namespace

void attention_init(const AttentionShape& s, int64_t lq, float* acc, float* m, float* l, GpuStream stream) {
  check_attention_shape(s, "attention_init");
  if (lq <= 0) return;
  const int64_t rows = lq * s.q_heads;
  init_kernel<<<detail::grid_for(rows * s.head_dim, 256), 256, 0, stream>>>(rows, s.head_dim, acc, m, l);
  detail::check_launch("attention_init");
}

void attention_block(const AttentionShape& s, const float* q, int64_t ld_q, int64_t lq,
                     int64_t q_pos0, const float* k, int64_t ld_k, const float* v, int64_t ld_v,
                     int64_t lk, int64_t k_pos0, float scale, bool causal, float* acc, float* m,
                     float* l, GpuStream stream) {
  AttentionArgs a;
  if (!make_attention_args("attention_block", s, q, ld_q, lq, q_pos0, k, ld_k, v, ld_v, lk, k_pos0, scale, causal,
                           acc, m, l, &a))
    return;
  dispatch_block(a, s, stream);
}

void attention_varlen(const AttentionShape& s, const float* q, int64_t ld_q, const float* k, int64_t ld_k,
                      const float* v, int64_t ld_v, int64_t rows, const int32_t* seq_idx, float scale, bool causal,
                      float* acc, float* m, float* l, GpuStream stream) {
  AttentionArgs a;
  if (!make_attention_args("attention_varlen", s, q, ld_q, rows, 0, k, ld_k, v, ld_v, rows, 0, scale, causal, acc, m,
                           l, &a))
    return;
  if (!seq_idx) throw std::invalid_argument("cuda::attention_varlen: seq_idx is required");
  a.seq = seq_idx;
  dispatch_block(a, s, stream);
}

void attention_merge(const AttentionShape& s, int64_t lq, const float* acc2, const float* m2,
                     const float* l2, float* acc, float* m, float* l, GpuStream stream) {
  check_attention_shape(s, "attention_merge");
  if (lq <= 0) return;
  const int64_t rows = lq * s.q_heads;
  merge_kernel<<<detail::grid_for(rows, 8), 256, 0, stream>>>(rows, static_cast<int>(s.head_dim), acc2, m2,
                                                   l2, acc, m, l);
  detail::check_launch("attention_merge");
}

void attention_finalize_to(const AttentionShape& s, int64_t lq, const float* acc, const float* l, void* out,
                           int64_t ld_out, DType out_dtype, GpuStream stream) {
  check_attention_shape(s, "attention_finalize");
  if (out_dtype != DType::F32 && out_dtype != DType::BF16)
    throw std::invalid_argument("cuda::attention_finalize_to: the output must be F32 or BF16");
  if (lq <= 0) return;
  const unsigned grid = detail::grid_for(lq * s.q_heads * s.head_dim, 256);
  const int H = static_cast<int>(s.q_heads), D = static_cast<int>(s.head_dim);
  if (out_dtype == DType::F32)
    finalize_kernel<float><<<grid, 256, 0, stream>>>(lq, H, D, acc, l, static_cast<float*>(out), ld_out);
  else
    finalize_kernel<__nv_bfloat16><<<grid, 256, 0, stream>>>(lq, H, D, acc, l, static_cast<__nv_bfloat16*>(out), ld_out);
  detail::check_launch("attention_finalize");
}

void attention_finalize(const AttentionShape& s, int64_t lq, const float* acc, const float* l,
                        float* out, int64_t ld_out, GpuStream stream) {
  attention_finalize_to(s, lq, acc, l, out, ld_out, DType::F32, stream);
}

}  // namespace ringscan::kernels::cuda
