// Mamba-2 SSD scan on the GPU in the chunked ("state space duality") form of
// mamba_ssm's chunk_scan_combined, in fp32 with fp32 accumulation. For one
// head, chunk c of q tokens, cs[t] the inclusive cumulative sum of dt*A over
// the chunk and H_c the state entering it:
//   (a) cumsum:         cs[t], exp(cs[t]), w[t] = exp(cs[q-1] - cs[t]) dt[t],
//                       chunk decay exp(cs[q-1])                   per (chunk, head)
//   (b) chunk state:    S_c[p,n] = sum_t w[t] x[t,p] B[t,n]        (from a zero state)
//       C B^T:          CB[t,s] = C[t].B[s]   per (chunk, group), shared by its heads
//   (c) state passing:  H_0 = init, H_{c+1} = exp(cs_c[q-1]) H_c + S_c; final = H_nc
//   (d) chunk scan:     y[t,p] = sum_{s<=t} CB[t,s] exp(cs[t]-cs[s]) dt[s] x[s,p]
//                              + exp(cs[t]) sum_n C[t,n] H_c[p,n]
// (b), C B^T and (d) are small GEMMs, run by one shared-memory tile routine
// (64 x 64 outputs per block of 256 threads, 4 x 4 per thread, k in steps of
// 16; on the tensor cores 64 x 64 or 64 x 80, the width over head_dim, so that
// Nemotron-H's head_dim 80 is one tile, not two with 48 padded columns) whose
// operands come from "loaders": functors giving element (m, k) of an operand,
// zero outside its bounds, with the decays and dt folded in. So every stage is
// a plain tiled GEMM and its bounds checks live in one place. A chunk's
// per-token factors (cs, dt, exp(cs), w: strided by `heads` in global memory
// and needed by every element of a tile) are staged in shared memory once per
// block for chunks of up to 256 tokens.
//
// Numerics as the CPU twin: cs is summed in double, and only causal differences
// cs[t] - cs[s] (s <= t; <= 0 for A < 0, dt >= 0) and cs[t] itself are
// exponentiated, so nothing overflows however strong the decay. The difference
// is taken in double before rounding to float: cs reaches hundreds below zero
// over a chunk, where a float's rounding would be a visible relative error of
// a decay close to 1.
//
// Scratch (chunk states, C B^T, cumsums) grows with the number of chunks, so a
// long sequence is done in passes of as many chunks as the scratch holds
// (ssd_scan.h's ssd_scan_scratch: the caller's workspace, or 256 MiB), the state carried
// from pass to pass in a scratch state; (c) reads each element of its incoming
// state before writing the same element of its outgoing one, which also makes
// init_state == final_state safe.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "cuda/cuda_common.cuh"
#include "cuda/mma.cuh"
#include "ssd_scan.h"
#include "ssd_stages.h"

namespace ringscan::kernels::cuda {
namespace {

// ---------------------------------------------------------------------------
// Tile GEMM: acc += A[m0 .. m0+64, k_begin .. k_end) @ B[k_begin .. k_end, n0 .. n0+64)

constexpr int kTile = 64;         // outputs per block: kTile x kTile
constexpr int kTileK = 16;        // k per shared-memory step
constexpr int kThreads = 256;     // 16 x 16 threads, 4 x 4 outputs each
constexpr int kPerThread = 4;     // kTile / 16
constexpr int kLoadsPerThread = kTileK * kTile / kThreads;  // elements of each operand tile
static_assert(kTile == 16 * kPerThread && kLoadsPerThread * kThreads == kTileK * kTile);

struct TileSmem {
  // [k][m] and [k][n]; +1 column so that the transposing stores of a
  // k-contiguous operand do not all hit one bank.
  float a[kTileK][kTile + 1];
  float b[kTileK][kTile + 1];
};

// Thread (ty, tx) = (tid / 16, tid % 16) owns outputs (m0 + ty + 16 i, n0 + tx + 16 j),
// i, j < 4: consecutive threads take consecutive n, so output rows are written
// coalesced and the shared-memory reads of b are conflict-free (those of a
// are broadcasts).
__device__ __forceinline__ int tile_tx() { return threadIdx.x % 16; }
__device__ __forceinline__ int tile_ty() { return threadIdx.x / 16; }

// Accumulates into acc. a(m, k) and b(k, n) return the operand elements
// (global row/column indices), 0 outside the operand; this routine only
// guards k < k_end. AKContig / BKContig say which index is contiguous in
// memory, so that consecutive threads load consecutive addresses.
// Must be called by all threads of the block (it synchronises).
template <bool AKContig, bool BKContig, class LoadA, class LoadB>
__device__ void tile_gemm(float (&acc)[kPerThread][kPerThread], TileSmem& sm, int64_t m0,
                          int64_t n0, int64_t k_begin, int64_t k_end, const LoadA& a,
                          const LoadB& b) {
  const int tid = threadIdx.x, tx = tile_tx(), ty = tile_ty();
  for (int64_t k0 = k_begin; k0 < k_end; k0 += kTileK) {
#pragma unroll
    for (int r = 0; r < kLoadsPerThread; ++r) {
      const int idx = tid + r * kThreads;
      const int ak = AKContig ? idx % kTileK : idx / kTile;
      const int am = AKContig ? idx / kTileK : idx % kTile;
      sm.a[ak][am] = k0 + ak < k_end ? a(m0 + am, k0 + ak) : 0.f;
      const int bk = BKContig ? idx % kTileK : idx / kTile;
      const int bn = BKContig ? idx / kTileK : idx % kTile;
      sm.b[bk][bn] = k0 + bk < k_end ? b(k0 + bk, n0 + bn) : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTileK; ++kk) {
      float av[kPerThread], bv[kPerThread];
#pragma unroll
      for (int i = 0; i < kPerThread; ++i) {
        av[i] = sm.a[kk][ty + 16 * i];
        bv[i] = sm.b[kk][tx + 16 * i];
      }
#pragma unroll
      for (int i = 0; i < kPerThread; ++i)
#pragma unroll
        for (int j = 0; j < kPerThread; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
    __syncthreads();  // before the next step overwrites the tiles
  }
}

// The same tile GEMM on the tensor cores (ssd_scan_bf16), on a 64 x kTN tile
// (kTN = 64, or 80 for a head_dim of 80 = 5 x 16: no columns padded to 128):
// the loaders' elements are rounded to bf16 in shared memory (A as [m][k], B
// as [n][k], k contiguous, rows padded by 8 so ldmatrix is conflict-free), and
// each of the 8 warps computes a 16 x kTN/2 part of the tile with mma.sync
// (fp32 accumulation). Thread outputs: acc[i][j] (i < kTN/16 n8 tiles, j < 4)
// is at tile_pos<true, kTN>(i, j).
constexpr int kMmaK = 32;             // k per shared-memory step
constexpr int kMmaRow = kMmaK + 8;    // padded row, in bf16
template <int kTN>
struct alignas(16) MmaTileSmem {  // ldmatrix reads 16-byte aligned rows
  __nv_bfloat16 a[kTile][kMmaRow];
  __nv_bfloat16 b[kTN][kMmaRow];
};
// The accumulator of one thread: [n8 tiles of its warp][4] on the tensor
// cores, [4][4] outputs in the SIMT tile.
template <int kTN>
using TileAcc = float[kTN / 16][kPerThread];

template <int kTN, bool AKContig, bool BKContig, class LoadA, class LoadB>
__device__ void tile_gemm_mma(TileAcc<kTN>& acc, MmaTileSmem<kTN>& sm, int64_t m0, int64_t n0, int64_t k_begin,
                              int64_t k_end, const LoadA& a, const LoadB& b) {
  namespace mm = ringscan::kernels::cuda::mma;
  static_assert(kTN % 16 == 0 && (kMmaK * kTN) % kThreads == 0);
  constexpr int kLoadsA = kMmaK * kTile / kThreads, kLoadsB = kMmaK * kTN / kThreads, kNT = kTN / 16;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int wr = 16 * (warp & 3), wc = (kTN / 2) * (warp >> 2);  // this warp's rows and columns of the tile
  // The next k step's elements are fetched into registers while this step's
  // mma work runs (software pipelining: the loaders compute their values,
  // decays folded in, so there is nothing for cp.async to copy as is), then
  // rounded into the tiles after the barrier: the same tiles as loading each
  // step in turn.
  float ra[kLoadsA], rb[kLoadsB];
  auto fetch = [&](int64_t k0) {
#pragma unroll
    for (int r = 0; r < kLoadsA; ++r) {
      const int idx = tid + r * kThreads;
      const int ak = AKContig ? idx % kMmaK : idx / kTile;
      const int am = AKContig ? idx / kMmaK : idx % kTile;
      ra[r] = k0 + ak < k_end ? a(m0 + am, k0 + ak) : 0.f;
    }
#pragma unroll
    for (int r = 0; r < kLoadsB; ++r) {
      const int idx = tid + r * kThreads;
      const int bk = BKContig ? idx % kMmaK : idx / kTN;
      const int bn = BKContig ? idx / kMmaK : idx % kTN;
      rb[r] = k0 + bk < k_end ? b(k0 + bk, n0 + bn) : 0.f;
    }
  };
  if (k_begin < k_end) fetch(k_begin);
  for (int64_t k0 = k_begin; k0 < k_end; k0 += kMmaK) {
#pragma unroll
    for (int r = 0; r < kLoadsA; ++r) {
      const int idx = tid + r * kThreads;
      sm.a[AKContig ? idx / kMmaK : idx % kTile][AKContig ? idx % kMmaK : idx / kTile] = __float2bfloat16_rn(ra[r]);
    }
#pragma unroll
    for (int r = 0; r < kLoadsB; ++r) {
      const int idx = tid + r * kThreads;
      sm.b[BKContig ? idx / kMmaK : idx % kTN][BKContig ? idx % kMmaK : idx / kTN] = __float2bfloat16_rn(rb[r]);
    }
    __syncthreads();
    if (k0 + kMmaK < k_end) fetch(k0 + kMmaK);  // in flight during this step's mma work
    uint32_t af[2][4];
#pragma unroll
    for (int kk = 0; kk < 2; ++kk)
      mm::ldmatrix_x4(af[kk], &sm.a[wr + (lane & 7) + ((lane >> 3) & 1) * 8][kk * 16 + (lane >> 4) * 8]);
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt) {
      uint32_t bf[4];  // 8 columns x 32 k: B for both k steps
      mm::ldmatrix_x4(bf, &sm.b[wc + 8 * nt + (lane & 7)][(lane >> 3) * 8]);
      const uint32_t b0[2] = {bf[0], bf[1]}, b1[2] = {bf[2], bf[3]};
      mm::mma_bf16_16816(acc[nt], af[0], b0);
      mm::mma_bf16_16816(acc[nt], af[1], b1);
    }
    __syncthreads();  // before the next step overwrites the tiles
  }
}

// Where a thread's acc[i][j] sits in the 64 x kTN tile (row, column).
template <bool kMma, int kTN = kTile>
__device__ __forceinline__ void tile_pos(int i, int j, int& r, int& c) {
  if constexpr (kMma) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    r = 16 * (warp & 3) + (lane >> 2) + 8 * (j >> 1);
    c = (kTN / 2) * (warp >> 2) + 8 * i + 2 * (lane & 3) + (j & 1);
  } else {
    r = tile_ty() + 16 * i;
    c = tile_tx() + 16 * j;
  }
}

template <bool kMma, int kTN = kTile>
using TileSmemOf = std::conditional_t<kMma, MmaTileSmem<kTN>, TileSmem>;

// The SIMT tile is 64 x 64 only; the tensor-core one 64 x kTN.
template <bool kMma, int kTN, bool AKContig, bool BKContig, class LoadA, class LoadB>
__device__ void tile_gemm_any(TileAcc<kTN>& acc, TileSmemOf<kMma, kTN>& sm, int64_t m0, int64_t n0, int64_t k_begin,
                              int64_t k_end, const LoadA& a, const LoadB& b) {
  if constexpr (kMma) {
    tile_gemm_mma<kTN, AKContig, BKContig>(acc, sm, m0, n0, k_begin, k_end, a, b);
  } else {
    static_assert(kTN == kTile, "the SIMT tile is 64 wide");
    tile_gemm<AKContig, BKContig>(acc, sm, m0, n0, k_begin, k_end, a, b);
  }
}

// The tile width over head_dim (the columns of the chunk outputs and of the
// transposed chunk states): 80 where it pads less than 64 (head_dim 80: one
// tile of 80 instead of two of 64, 37.5% of them padding), on the tensor cores.
__host__ __device__ inline int64_t tiles_of(int64_t n, int width) { return (n + width - 1) / width; }
inline int head_dim_tile(int64_t head_dim) {
  return tiles_of(head_dim, 80) * 80 < tiles_of(head_dim, kTile) * kTile ? 80 : kTile;
}

__host__ __device__ inline int64_t tiles(int64_t n) { return (n + kTile - 1) / kTile; }

// ---------------------------------------------------------------------------
// Loaders. Pointers are pre-offset to the chunk's first token and, where it
// applies, to the head's or group's first column; rows t, s are chunk-local.

// Row-major [rows, cols] slice with leading dimension ld, zero outside; with a
// per-row float factor (stride `fstride`, null: 1).
struct RowsLoad {
  const float* p;
  int64_t ld, rows, cols;
  const float* factor;
  int64_t fstride;
  __device__ float at(int64_t r, int64_t c) const {
    if (r >= rows || c >= cols) return 0.f;
    const float v = p[r * ld + c];
    return factor ? factor[r * fstride] * v : v;
  }
};
// As operand A(m = row, k = col) (contiguous in k).
struct RowsAsA : RowsLoad {
  __device__ float operator()(int64_t m, int64_t k) const { return at(m, k); }
};
// As operand A(m = col, k = row) (contiguous in m): the transpose.
struct RowsAsAT : RowsLoad {
  __device__ float operator()(int64_t m, int64_t k) const { return at(k, m); }
};
// As operand B(k = row, n = col) (contiguous in n).
struct RowsAsB : RowsLoad {
  __device__ float operator()(int64_t k, int64_t n) const { return at(k, n); }
};
// As operand B(k = col, n = row) (contiguous in k): the transpose.
struct RowsAsBT : RowsLoad {
  __device__ float operator()(int64_t k, int64_t n) const { return at(n, k); }
};

// The intra-chunk matrix M[t, s] = CB[t, s] exp(cs[t] - cs[s]) dt[s], s <= t < q
// (zero elsewhere: causal). cs and dt have row stride `heads`.
struct IntraChunkA {
  const float* cb;  // [q, ld_cb] for this (chunk, group)
  int64_t ld_cb;
  const double* cs;
  const float* dt;
  int64_t heads, q;
  const int32_t* seq;  // packed sequences: the chunk's sequence ids (null: one sequence)
  __device__ float operator()(int64_t t, int64_t s) const {
    if (t >= q || s > t || (seq && seq[t] != seq[s])) return 0.f;
    const float decay = expf(static_cast<float>(cs[t * heads] - cs[s * heads]));
    return cb[t * ld_cb + s] * decay * dt[s * heads];
  }
};

// The same with the chunk's cs and dt staged in shared memory (ChunkStage):
// the global reads of IntraChunkA are strided by `heads` and repeated for
// every element of a tile.
struct StagedIntraChunkA {
  const float* cb;
  int64_t ld_cb;
  const double* cs;  // [q], shared
  const float* dt;   // [q], shared
  int64_t q;
  const int32_t* seq;  // [q], shared; null: one sequence
  __device__ float operator()(int64_t t, int64_t s) const {
    if (t >= q || s > t || (seq && seq[t] != seq[s])) return 0.f;
    return cb[t * ld_cb + s] * expf(static_cast<float>(cs[t] - cs[s])) * dt[s];
  }
};

// A chunk's per-token values of one head, staged in shared memory by the
// blocks that read them for every element of a tile (chunks of at most
// kStageMax tokens: the model's 256; longer chunks read global memory).
constexpr int kStageMax = 256;
struct ChunkStage {
  double cs[kStageMax];  // cumulative dt*A
  float dt[kStageMax];
  float f[kStageMax];  // the row factor: exp(cs) for the chunk scan's state term, w for the chunk state
  int32_t seq[kStageMax];  // packed sequences: sequence ids
};
struct NoStage {};
template <bool kStaged>
using StageOf = std::conditional_t<kStaged, ChunkStage, NoStage>;

// ---------------------------------------------------------------------------
// (a) Per (chunk, head): cumulative dt*A in double, and the float factors the
// other stages use. One block per chunk, threads over heads: the reads of
// dt[t, :] and the writes of row t coalesce. The optional outputs may be null.
__global__ void chunk_cumsum_kernel(int64_t len, int64_t heads, int64_t Q, const float* dt,
                                    const float* A, double* cs, float* exp_cs, float* w,
                                    float* chunk_decay, const int32_t* seq, bool seq_has_prev) {
  const int64_t c = blockIdx.x, c0 = c * Q, q = min(Q, len - c0);
  // Packed sequences: the state entering the chunk belongs to the sequence of
  // the token before it (`before`), the state leaving it to that of its last
  // token (`last`). Only tokens of `before` see the incoming state (exp_cs),
  // only tokens of `last` add to the outgoing one (w), and it carries the
  // incoming state only when both are the same sequence (the chunk decay).
  const int32_t last = seq ? seq[c0 + q - 1] : 0;
  const int32_t before = !seq ? 0 : c > 0 || seq_has_prev ? seq[c0 - 1] : -1;
  for (int64_t h = threadIdx.x; h < heads; h += blockDim.x) {
    const double a = A[h];
    double acc = 0.0;
    for (int64_t t = c0; t < c0 + q; ++t) {
      acc += static_cast<double>(dt[t * heads + h]) * a;
      cs[t * heads + h] = acc;
    }
    if (chunk_decay) chunk_decay[c * heads + h] = before == last ? static_cast<float>(exp(acc)) : 0.f;
    if (exp_cs || w)
      for (int64_t t = c0; t < c0 + q; ++t) {
        const double v = cs[t * heads + h];  // this thread's own write: visible
        const int32_t st = seq ? seq[t] : 0;
        if (exp_cs) exp_cs[t * heads + h] = st == before ? static_cast<float>(exp(v)) : 0.f;
        if (w) w[t * heads + h] = st == last ? static_cast<float>(exp(acc - v)) * dt[t * heads + h] : 0.f;
      }
  }
}

// (b) Chunk states from zero: S_c[p, n] = sum_t w[t] x[t, p] B[t, n]; grid
// (tiles, heads, chunks). SIMT: one 64 x 64 tile of (p, n) per block. Tensor
// cores: the transpose, one 64 x kTN tile of (n, p) per block, so that
// head_dim is the tile's width (kTN = 80 for head_dim 80). kStaged: w from
// shared memory (chunks of at most kStageMax tokens).
template <bool kMma, int kTN, bool kStaged>
__global__ void __launch_bounds__(kThreads)
    chunk_state_kernel(int64_t len, int64_t heads, int64_t P, int64_t heads_per_group, int64_t N,
                       int64_t Q, const float* x, int64_t ld_x, const float* B, int64_t ld_b,
                       const float* w, float* states) {
  __shared__ TileSmemOf<kMma, kTN> sm;
  __shared__ StageOf<kStaged> st;
  const int64_t h = blockIdx.y, c = blockIdx.z, g = h / heads_per_group;
  const int64_t c0 = c * Q, q = min(Q, len - c0);
  const float* wf = w + c0 * heads + h;
  int64_t wstride = heads;
  if constexpr (kStaged) {
    for (int64_t t = threadIdx.x; t < q; t += kThreads) st.f[t] = wf[t * heads];
    __syncthreads();
    wf = st.f, wstride = 1;
  }
  float acc[kTN / 16][kPerThread] = {};
  float* S = states + (c * heads + h) * P * N;
  if constexpr (kMma) {
    const int64_t p_tiles = tiles_of(P, kTN);
    const int64_t n0 = (blockIdx.x / p_tiles) * kTile, p0 = (blockIdx.x % p_tiles) * kTN;
    const RowsAsAT a{{B + c0 * ld_b + g * N, ld_b, q, N, nullptr, 0}};  // A(m = n, k = t) = B[t, n]
    const RowsAsB b{{x + c0 * ld_x + h * P, ld_x, q, P, wf, wstride}};  // B(k = t, n = p) = w[t] x[t, p]
    tile_gemm_any<kMma, kTN, false, false>(acc, sm, n0, p0, 0, q, a, b);
    for (int i = 0; i < kTN / 16; ++i)
      for (int j = 0; j < kPerThread; ++j) {
        int r, col;
        tile_pos<kMma, kTN>(i, j, r, col);
        const int64_t n = n0 + r, p = p0 + col;
        if (p < P && n < N) S[p * N + n] = acc[i][j];
      }
  } else {
    const int64_t n_tiles = tiles(N);
    const int64_t p0 = (blockIdx.x / n_tiles) * kTile, n0 = (blockIdx.x % n_tiles) * kTile;
    // A(m = p, k = t) = w[t] x[t, p]: x's rows are tokens, so this is x^T.
    const RowsAsAT a{{x + c0 * ld_x + h * P, ld_x, q, P, wf, wstride}};
    const RowsAsB b{{B + c0 * ld_b + g * N, ld_b, q, N, nullptr, 0}};
    tile_gemm_any<kMma, kTN, false, false>(acc, sm, p0, n0, 0, q, a, b);
    for (int i = 0; i < kPerThread; ++i)
      for (int j = 0; j < kPerThread; ++j) {
        int r, col;
        tile_pos<kMma>(i, j, r, col);
        const int64_t p = p0 + r, n = n0 + col;
        if (p < P && n < N) S[p * N + n] = acc[i][j];
      }
  }
}

// C B^T per (chunk, group): CB[t, s] = C[t].B[s] for t, s < q, only the tiles
// on or below the diagonal (the others are never read). Stored [chunk, group,
// Q, Q]. Grid (Q tiles * Q tiles, groups, chunks).
template <bool kMma>
__global__ void __launch_bounds__(kThreads)
    chunk_cb_kernel(int64_t len, int64_t groups, int64_t N, int64_t Q, const float* B,
                    int64_t ld_b, const float* C, int64_t ld_c, float* cb) {
  __shared__ TileSmemOf<kMma> sm;
  const int64_t g = blockIdx.y, c = blockIdx.z;
  const int64_t c0 = c * Q, q = min(Q, len - c0);
  const int64_t q_tiles = tiles(Q);
  const int64_t t_tile = blockIdx.x / q_tiles, s_tile = blockIdx.x % q_tiles;
  const int64_t t0 = t_tile * kTile, s0 = s_tile * kTile;
  if (s_tile > t_tile || t0 >= q) return;  // whole block: before any barrier
  const RowsAsA a{{C + c0 * ld_c + g * N, ld_c, q, N, nullptr, 0}};   // A(t, n) = C[t, n]
  const RowsAsBT b{{B + c0 * ld_b + g * N, ld_b, q, N, nullptr, 0}};  // B(n, s) = B[s, n]
  float acc[kPerThread][kPerThread] = {};
  tile_gemm_any<kMma, kTile, true, true>(acc, sm, t0, s0, 0, N, a, b);
  float* out = cb + (c * groups + g) * Q * Q;
  for (int i = 0; i < kPerThread; ++i)
    for (int j = 0; j < kPerThread; ++j) {
      int r, col;
      tile_pos<kMma>(i, j, r, col);
      const int64_t t = t0 + r, s = s0 + col;
      if (t < q && s < q) out[t * Q + s] = acc[i][j];
    }
}

// (c) State passing, one thread per state element, sequential over chunks:
// states[c] holds S_c on entry and H_c (the state entering chunk c) on exit.
// Each thread reads init[e] before writing final[e], and no thread touches
// another's element, so init == final is safe.
__global__ void state_passing_kernel(int64_t chunks, int64_t heads, int64_t PN,
                                     const float* chunk_decay, const float* init, float* states,
                                     float* final_state) {
  const int64_t n = heads * PN;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t h = e / PN;
    float Hc = init ? init[e] : 0.f;
    for (int64_t c = 0; c < chunks; ++c) {
      float* sc = states + c * n + e;
      const float S = *sc;
      *sc = Hc;
      Hc = fmaf(chunk_decay[c * heads + h], Hc, S);
    }
    if (final_state) final_state[e] = Hc;
  }
}

// (d) Outputs, one 64 x kTN tile of (t, p) per block (kTN 64, or 80 on the
// tensor cores for head_dim 80); grid (Q tiles * p tiles, heads, chunks).
// first_chunk_has_state: false when chunk 0 starts from a zero state (no
// init_state), whose state term is then skipped. kStaged: the chunk's cs, dt
// and exp(cs) from shared memory (chunks of at most kStageMax tokens).
template <bool kMma, int kTN, bool kStaged>
__global__ void __launch_bounds__(kThreads)
    chunk_scan_kernel(int64_t len, int64_t heads, int64_t P, int64_t heads_per_group,
                      int64_t groups, int64_t N, int64_t Q, const float* x, int64_t ld_x,
                      const float* dt, const float* C, int64_t ld_c, const double* cs,
                      const float* exp_cs, const float* cb, const float* states,
                      bool first_chunk_has_state, const int32_t* seq, float* y, int64_t ld_y) {
  __shared__ TileSmemOf<kMma, kTN> sm;
  __shared__ StageOf<kStaged> st;
  const int64_t h = blockIdx.y, c = blockIdx.z, g = h / heads_per_group;
  const int64_t c0 = c * Q, q = min(Q, len - c0);
  const int64_t p_tiles = tiles_of(P, kTN);
  const int64_t t0 = (blockIdx.x / p_tiles) * kTile, p0 = (blockIdx.x % p_tiles) * kTN;
  if (t0 >= q) return;  // past the end of a short last chunk; before any barrier
  const float* ecs = exp_cs + c0 * heads + h;
  int64_t ecs_stride = heads;
  if constexpr (kStaged) {
    for (int64_t t = threadIdx.x; t < q; t += kThreads) {
      st.cs[t] = cs[(c0 + t) * heads + h];
      st.dt[t] = dt[(c0 + t) * heads + h];
      st.f[t] = ecs[t * heads];
      if (seq) st.seq[t] = seq[c0 + t];
    }
    __syncthreads();
    ecs = st.f, ecs_stride = 1;
  }
  float acc[kTN / 16][kPerThread] = {};
  if (c > 0 || first_chunk_has_state) {
    // exp(cs[t]) C[t, :] @ H_c^T: A(t, n) = exp_cs[t] C[t, n], B(n, p) = H_c[p, n].
    const RowsAsA a{{C + c0 * ld_c + g * N, ld_c, q, N, ecs, ecs_stride}};
    const RowsAsBT b{{states + (c * heads + h) * P * N, N, P, N, nullptr, 0}};
    tile_gemm_any<kMma, kTN, true, true>(acc, sm, t0, p0, 0, N, a, b);
  }
  // Intra-chunk: M[t, s] @ x[s, p] over s < min(q, last row of the tile + 1).
  const RowsAsB b{{x + c0 * ld_x + h * P, ld_x, q, P, nullptr, 0}};
  const int64_t s_end = min(q, t0 + kTile);
  if constexpr (kStaged) {
    const StagedIntraChunkA a{cb + (c * groups + g) * Q * Q, Q, st.cs, st.dt, q, seq ? st.seq : nullptr};
    tile_gemm_any<kMma, kTN, true, false>(acc, sm, t0, p0, 0, s_end, a, b);
  } else {
    const IntraChunkA a{cb + (c * groups + g) * Q * Q, Q, cs + c0 * heads + h, dt + c0 * heads + h, heads, q,
                        seq ? seq + c0 : nullptr};
    tile_gemm_any<kMma, kTN, true, false>(acc, sm, t0, p0, 0, s_end, a, b);
  }
  for (int i = 0; i < kTN / 16; ++i)
    for (int j = 0; j < kPerThread; ++j) {
      int r, col;
      tile_pos<kMma, kTN>(i, j, r, col);
      const int64_t t = t0 + r, p = p0 + col;
      if (t < q && p < P) y[(c0 + t) * ld_y + h * P + p] = acc[i][j];
    }
}

// ---------------------------------------------------------------------------
// State correction.

// Per head, the exclusive prefix over chunks of the chunk totals of dt*A
// (the cs of each chunk's last token): offset[c * heads + h], c <= chunks.
// One thread per head; chunks are few (len / chunk).
__global__ void chunk_offsets_kernel(int64_t len, int64_t heads, int64_t Q, int64_t chunks,
                                     const double* cs, double* offset) {
  const int64_t h = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (h >= heads) return;
  double acc = 0.0;
  for (int64_t c = 0; c < chunks; ++c) {
    offset[c * heads + h] = acc;
    acc += cs[(min((c + 1) * Q, len) - 1) * heads + h];
  }
  offset[chunks * heads + h] = acc;
}

// decay[t, h] = exp(A[h] * sum_{s<=t} dt[s, h]) = exp(offset of t's chunk + cs[t, h]).
__global__ void correction_decay_kernel(int64_t len, int64_t heads, int64_t Q, const double* cs,
                                        const double* offset, float* decay) {
  const int64_t n = len * heads;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = i / heads, h = i % heads;
    decay[i] = static_cast<float>(exp(offset[(t / Q) * heads + h] + cs[i]));
  }
}

// y[t, h, p] += decay[t, h] * sum_n C[t, g, n] H[h, p, n]; one 64 x 64 tile of
// (t, p) per block, grid (t tiles * p tiles, heads).
__global__ void __launch_bounds__(kThreads)
    correction_kernel(int64_t len, int64_t heads, int64_t P, int64_t heads_per_group, int64_t N,
                      const float* C, int64_t ld_c, const float* Hin, const float* decay,
                      float* y, int64_t ld_y) {
  __shared__ TileSmem sm;
  const int64_t h = blockIdx.y, g = h / heads_per_group;
  const int64_t p_tiles = tiles(P);
  const int64_t t0 = (blockIdx.x / p_tiles) * kTile, p0 = (blockIdx.x % p_tiles) * kTile;
  const RowsAsA a{{C + g * N, ld_c, len, N, nullptr, 0}};          // A(t, n) = C[t, n]
  const RowsAsBT b{{Hin + h * P * N, N, P, N, nullptr, 0}};         // B(n, p) = H[p, n]
  float acc[kPerThread][kPerThread] = {};
  tile_gemm<true, true>(acc, sm, t0, p0, 0, N, a, b);
  for (int i = 0; i < kPerThread; ++i)
    for (int j = 0; j < kPerThread; ++j) {
      const int64_t t = t0 + tile_ty() + 16 * i, p = p0 + tile_tx() + 16 * j;
      if (t < len && p < P) {
        float& out = y[t * ld_y + h * P + p];
        out = fmaf(decay[t * heads + h], acc[i][j], out);
      }
    }
}

// final[e] += exp(A[h] * sum dt) * H[e]; total_decay null means len 0 (factor 1).
__global__ void correction_final_kernel(int64_t heads, int64_t PN, const float* total_decay,
                                        const float* Hin, float* final_state) {
  const int64_t n = heads * PN;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n;
       e += int64_t(gridDim.x) * blockDim.x) {
    const float f = total_decay ? total_decay[(e / PN)] : 1.f;
    final_state[e] = fmaf(f, Hin[e], final_state[e]);
  }
}

// ---------------------------------------------------------------------------

struct SsdScratchTag {};

constexpr int64_t kMaxGridYZ = 65535;

void check_shape(const SsdShape& s, const char* who) {
  check_ssd_shape(s, who);
  if (s.heads > kMaxGridYZ || s.groups > kMaxGridYZ)
    throw std::invalid_argument(std::string(who) + ": at most 65535 heads");
}

// Scratch from the caller's workspace, or (ws empty) the per-thread buffer
// that grows: see ssd_scan.h.
char* scratch_base(const Workspace& ws, size_t bytes, const char* op) {
  if (ws.data) return static_cast<char*>(ws.data);
  return static_cast<char*>(detail::device_scratch<SsdScratchTag>(bytes, op));
}

}  // namespace

// --- The stages (ssd_stages.h) -------------------------------------------------------

namespace {

// The chunk geometry of a stage call: Q, chunks, and the chunk count as a grid dimension.
struct Chunks {
  int64_t Q, n;
  unsigned grid;
};
Chunks chunks_of(const SsdShape& s, const char* op) {
  check_shape(s, op);
  if (s.chunk <= 0) throw std::invalid_argument(std::string(op) + ": expected chunk > 0");
  const int64_t Q = std::min(s.chunk, s.len), n = Q > 0 ? (s.len + Q - 1) / Q : 0;
  if (n > kMaxGridYZ) throw std::invalid_argument(std::string(op) + ": at most 65535 chunks per call");
  return {Q, n, static_cast<unsigned>(n)};
}

template <bool kMma>
void chunk_cb(const SsdShape& s, const float* B, int64_t ld_b, const float* C, int64_t ld_c, float* cb,
              cudaStream_t stream) {
  const Chunks k = chunks_of(s, "cuda::ssd_chunk_cb");
  if (k.n == 0) return;
  const dim3 grid(static_cast<unsigned>(tiles(k.Q) * tiles(k.Q)), static_cast<unsigned>(s.groups), k.grid);
  chunk_cb_kernel<kMma><<<grid, kThreads, 0, stream>>>(s.len, s.groups, s.state, k.Q, B, ld_b, C, ld_c, cb);
  detail::check_launch("ssd_chunk_cb");
}

// Runs f(tile width, staged) with both as compile-time constants
// (std::integral_constant), for the runtime choice: the head_dim tile (80
// only on the tensor cores) and whether the chunk's per-token factors fit the
// shared-memory stage.
template <bool kMma, class F>
void with_tile(int tn, bool staged, F&& f) {
  auto pick_stage = [&](auto tn_c) {
    if (staged)
      f(tn_c, std::true_type{});
    else
      f(tn_c, std::false_type{});
  };
  if constexpr (kMma)
    if (tn == 80) return pick_stage(std::integral_constant<int, 80>{});
  pick_stage(std::integral_constant<int, kTile>{});
}

template <bool kMma>
void chunk_state(const SsdShape& s, const float* x, int64_t ld_x, const float* B, int64_t ld_b, const float* w,
                 float* states, cudaStream_t stream) {
  const Chunks k = chunks_of(s, "cuda::ssd_chunk_state");
  if (k.n == 0) return;
  const int tn = kMma ? head_dim_tile(s.head_dim) : kTile;
  // SIMT: (p, n) tiles; tensor cores: (n, p) tiles, head_dim across.
  const int64_t blocks = tiles(s.state) * tiles_of(s.head_dim, tn);
  const dim3 grid(static_cast<unsigned>(blocks), static_cast<unsigned>(s.heads), k.grid);
  with_tile<kMma>(tn, k.Q <= kStageMax, [&](auto tn_c, auto staged_c) {
    constexpr int TN = decltype(tn_c)::value;
    constexpr bool kStaged = decltype(staged_c)::value;
    chunk_state_kernel<kMma, TN, kStaged><<<grid, kThreads, 0, stream>>>(s.len, s.heads, s.head_dim, s.heads / s.groups, s.state, k.Q, x, ld_x, B, ld_b, w, states);
  });
  detail::check_launch("ssd_chunk_state");
}

template <bool kMma>
void chunk_scan(const SsdShape& s, const float* x, int64_t ld_x, const float* dt, const float* C, int64_t ld_c,
                const double* cs, const float* exp_cs, const float* cb, const float* states, bool first_has_state,
                const int32_t* seq, float* y, int64_t ld_y, cudaStream_t stream) {
  const Chunks k = chunks_of(s, "cuda::ssd_chunk_scan");
  if (k.n == 0) return;
  const int tn = kMma ? head_dim_tile(s.head_dim) : kTile;
  const dim3 grid(static_cast<unsigned>(tiles(k.Q) * tiles_of(s.head_dim, tn)), static_cast<unsigned>(s.heads), k.grid);
  with_tile<kMma>(tn, k.Q <= kStageMax, [&](auto tn_c, auto staged_c) {
    constexpr int TN = decltype(tn_c)::value;
    constexpr bool kStaged = decltype(staged_c)::value;
    chunk_scan_kernel<kMma, TN, kStaged><<<grid, kThreads, 0, stream>>>(s.len, s.heads, s.head_dim, s.heads / s.groups, s.groups, s.state, k.Q, x, ld_x, dt, C, ld_c, cs, exp_cs, cb, states, first_has_state, seq, y, ld_y);
  });
  detail::check_launch("ssd_chunk_scan");
}

void chunk_cumsum(const SsdShape& s, const float* dt, const float* A, double* cs, float* exp_cs, float* w, float* decay,
                  const int32_t* seq, bool seq_has_prev, cudaStream_t stream) {
  const Chunks k = chunks_of(s, "cuda::ssd_chunk_cumsum");
  if (k.n == 0) return;
  chunk_cumsum_kernel<<<k.grid, 128, 0, stream>>>(s.len, s.heads, k.Q, dt, A, cs, exp_cs, w, decay, seq, seq_has_prev);
  detail::check_launch("ssd_chunk_cumsum");
}

void state_passing(const SsdShape& s, const float* decay, const float* init, float* states, float* final_state,
                   cudaStream_t stream) {
  const Chunks k = chunks_of(s, "cuda::ssd_state_passing");
  const int64_t elems = s.heads * s.head_dim * s.state;
  state_passing_kernel<<<detail::grid_for(elems, 256), 256, 0, stream>>>(k.n, s.heads, s.head_dim * s.state, decay, init, states, final_state);
  detail::check_launch("ssd_state_passing");
}

template <bool kMma>
void ssd_scan_impl(const SsdShape& s, const float* x, int64_t ld_x, const float* dt, const float* A,
                   const float* B, int64_t ld_b, const float* C, int64_t ld_c,
                   const float* init_state, float* y, int64_t ld_y, float* final_state, const Workspace& ws,
                   cudaStream_t stream, const int32_t* seq_idx = nullptr, cudaEvent_t final_ready = nullptr) {
  check_shape(s, "cuda::ssd_scan");
  if (s.chunk <= 0) throw std::invalid_argument("cuda::ssd_scan: expected chunk > 0");
  const int64_t L = s.len, H = s.heads, P = s.head_dim, G = s.groups, N = s.state;
  const int64_t state_elems = H * P * N;
  auto signal_final = [&] {
    if (final_ready) detail::check_cuda(cudaEventRecord(final_ready, stream), "ssd_scan", "cudaEventRecord");
  };
  if (L == 0) {  // the state passes through unchanged
    if (final_state && init_state != final_state) {
      if (init_state)
        detail::check_cuda(cudaMemcpyAsync(final_state, init_state, state_elems * sizeof(float),
                                           cudaMemcpyDeviceToDevice, stream),
                           "ssd_scan", "cudaMemcpyAsync");
      else
        detail::check_cuda(cudaMemsetAsync(final_state, 0, state_elems * sizeof(float), stream),
                           "ssd_scan", "cudaMemsetAsync");
    }
    return signal_final();
  }
  const int64_t Q = std::min(s.chunk, L);
  const int64_t total_chunks = (L + Q - 1) / Q;
  // Chunks per pass: what the workspace holds (ws given), else the default budget.
  const size_t room = ws.data ? ws.bytes : kSsdPassScratchBytes;
  const int64_t max_chunks = ssd_scan_chunks_per_pass(s, room);
  if (max_chunks < 1)
    throw std::invalid_argument("cuda::ssd_scan: " + std::string(ws.data ? "the workspace" : "the 256 MiB budget") +
                                " holds less than one chunk's scratch (" +
                                std::to_string(ssd_scan_scratch(s, 1, total_chunks > 1).bytes) + " bytes)");
  const bool multi_pass = max_chunks < total_chunks;
  const SsdScanScratch lay = ssd_scan_scratch(s, max_chunks, multi_pass);
  char* base = scratch_base(ws, lay.bytes, "ssd_scan");
  struct {
    double* cs;
    float *exp_cs, *w, *decay, *states, *cb, *carry;
  } buf{reinterpret_cast<double*>(base + lay.cs), reinterpret_cast<float*>(base + lay.exp_cs),
        reinterpret_cast<float*>(base + lay.w),      reinterpret_cast<float*>(base + lay.decay),
        reinterpret_cast<float*>(base + lay.states), reinterpret_cast<float*>(base + lay.cb),
        multi_pass ? reinterpret_cast<float*>(base + lay.carry) : nullptr};

  for (int64_t chunk0 = 0; chunk0 < total_chunks; chunk0 += max_chunks) {
    const int64_t nc = std::min(max_chunks, total_chunks - chunk0);
    const int64_t t0 = chunk0 * Q, Lp = std::min(nc * Q, L - t0);  // this pass's tokens
    const bool first = chunk0 == 0, last = chunk0 + nc == total_chunks;
    const float* pass_init = first ? init_state : buf.carry;
    float* pass_final = last ? final_state : buf.carry;
    const float* xp = x + t0 * ld_x;
    const float* dtp = dt + t0 * H;
    const float* Bp = B + t0 * ld_b;
    const float* Cp = C + t0 * ld_c;
    float* yp = y + t0 * ld_y;
    const SsdShape ps{Lp, H, P, G, N, Q};  // this pass
    const int32_t* seqp = seq_idx ? seq_idx + t0 : nullptr;  // packed sequences
    // The states first, then the outputs: after the last pass's state passing
    // the final state is complete, and final_ready lets its consumer start
    // while C B^T and the outputs (most of the work) still run.
    chunk_cumsum(ps, dtp, A, buf.cs, buf.exp_cs, buf.w, buf.decay, seqp, t0 > 0, stream);
    chunk_state<kMma>(ps, xp, ld_x, Bp, ld_b, buf.w, buf.states, stream);
    state_passing(ps, buf.decay, pass_init, buf.states, pass_final, stream);
    if (last) signal_final();
    chunk_cb<kMma>(ps, Bp, ld_b, Cp, ld_c, buf.cb, stream);
    chunk_scan<kMma>(ps, xp, ld_x, dtp, Cp, ld_c, buf.cs, buf.exp_cs, buf.cb, buf.states, pass_init != nullptr, seqp,
                     yp, ld_y, stream);
  }
}

}  // namespace

void ssd_chunk_cumsum(const SsdShape& s, const float* dt, const float* A, double* cs, float* exp_cs, float* w,
                      float* decay, GpuStream stream) {
  chunk_cumsum(s, dt, A, cs, exp_cs, w, decay, nullptr, false, stream);
}
void ssd_chunk_cb(const SsdShape& s, const float* B, int64_t ld_b, const float* C, int64_t ld_c, float* cb,
                  GpuStream stream) {
  chunk_cb<false>(s, B, ld_b, C, ld_c, cb, stream);
}
void ssd_chunk_cb_bf16(const SsdShape& s, const float* B, int64_t ld_b, const float* C, int64_t ld_c, float* cb,
                       GpuStream stream) {
  chunk_cb<true>(s, B, ld_b, C, ld_c, cb, stream);
}
void ssd_chunk_state(const SsdShape& s, const float* x, int64_t ld_x, const float* B, int64_t ld_b, const float* w,
                     float* states, GpuStream stream) {
  chunk_state<false>(s, x, ld_x, B, ld_b, w, states, stream);
}
void ssd_chunk_state_bf16(const SsdShape& s, const float* x, int64_t ld_x, const float* B, int64_t ld_b,
                          const float* w, float* states, GpuStream stream) {
  chunk_state<true>(s, x, ld_x, B, ld_b, w, states, stream);
}
void ssd_state_passing(const SsdShape& s, const float* decay, const float* init, float* states, float* final_state,
                       GpuStream stream) {
  state_passing(s, decay, init, states, final_state, stream);
}
void ssd_chunk_scan(const SsdShape& s, const float* x, int64_t ld_x, const float* dt, const float* C, int64_t ld_c,
                    const double* cs, const float* exp_cs, const float* cb, const float* states, bool first_has_state,
                    float* y, int64_t ld_y, GpuStream stream) {
  chunk_scan<false>(s, x, ld_x, dt, C, ld_c, cs, exp_cs, cb, states, first_has_state, nullptr, y, ld_y, stream);
}
void ssd_chunk_scan_bf16(const SsdShape& s, const float* x, int64_t ld_x, const float* dt, const float* C,
                         int64_t ld_c, const double* cs, const float* exp_cs, const float* cb, const float* states,
                         bool first_has_state, float* y, int64_t ld_y, GpuStream stream) {
  chunk_scan<true>(s, x, ld_x, dt, C, ld_c, cs, exp_cs, cb, states, first_has_state, nullptr, y, ld_y, stream);
}

// --- The scan and the state correction ------------------------------------------------

void ssd_scan(const SsdShape& s, const float* x, int64_t ld_x, const float* dt, const float* A, const float* B,
              int64_t ld_b, const float* C, int64_t ld_c, const float* init_state, float* y, int64_t ld_y,
              float* final_state, const Workspace& ws, GpuStream stream) {
  ssd_scan_impl<false>(s, x, ld_x, dt, A, B, ld_b, C, ld_c, init_state, y, ld_y, final_state, ws, stream);
}

void ssd_scan_bf16(const SsdShape& s, const float* x, int64_t ld_x, const float* dt, const float* A, const float* B,
                   int64_t ld_b, const float* C, int64_t ld_c, const float* init_state, float* y, int64_t ld_y,
                   float* final_state, const Workspace& ws, GpuStream stream) {
  ssd_scan_impl<true>(s, x, ld_x, dt, A, B, ld_b, C, ld_c, init_state, y, ld_y, final_state, ws, stream);
}

void ssd_scan_signal_final(const SsdShape& s, const float* x, int64_t ld_x, const float* dt, const float* A,
                           const float* B, int64_t ld_b, const float* C, int64_t ld_c, const float* init_state, float* y,
                           int64_t ld_y, float* final_state, bool tensor_cores, void* final_ready, const Workspace& ws,
                           GpuStream stream) {
  const auto ev = static_cast<cudaEvent_t>(final_ready);
  if (tensor_cores)
    ssd_scan_impl<true>(s, x, ld_x, dt, A, B, ld_b, C, ld_c, init_state, y, ld_y, final_state, ws, stream, nullptr, ev);
  else
    ssd_scan_impl<false>(s, x, ld_x, dt, A, B, ld_b, C, ld_c, init_state, y, ld_y, final_state, ws, stream, nullptr, ev);
}

void ssd_scan_varlen(const SsdShape& s, const float* x, int64_t ld_x, const float* dt, const float* A, const float* B,
                     int64_t ld_b, const float* C, int64_t ld_c, const int32_t* seq_idx, float* y, int64_t ld_y,
                     bool tensor_cores, const Workspace& ws, GpuStream stream) {
  if (!seq_idx) throw std::invalid_argument("cuda::ssd_scan_varlen: seq_idx is required");
  if (tensor_cores)
    ssd_scan_impl<true>(s, x, ld_x, dt, A, B, ld_b, C, ld_c, nullptr, y, ld_y, nullptr, ws, stream, seq_idx);
  else
    ssd_scan_impl<false>(s, x, ld_x, dt, A, B, ld_b, C, ld_c, nullptr, y, ld_y, nullptr, ws, stream, seq_idx);
}

namespace {
// One block per head: each thread sums a stride of dt's rows in double, then a
// tree over the block (blockDim.x a power of two).
__global__ void segment_decay_kernel(int64_t L, int64_t H, const float* dt, const float* A, float* decay) {
  __shared__ double part[256];
  const int64_t h = blockIdx.x;
  double sum = 0.0;
  for (int64_t t = threadIdx.x; t < L; t += blockDim.x) sum += dt[t * H + h];
  part[threadIdx.x] = sum;
  __syncthreads();
  for (unsigned w = blockDim.x / 2; w > 0; w /= 2) {
    if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) decay[h] = static_cast<float>(exp(static_cast<double>(A[h]) * part[0]));
}
}  // namespace

void ssd_segment_decay(const SsdShape& s, const float* dt, const float* A, float* decay, GpuStream stream) {
  check_shape(s, "cuda::ssd_segment_decay");
  segment_decay_kernel<<<static_cast<unsigned>(s.heads), 256, 0, stream>>>(s.len, s.heads, dt, A, decay);
  detail::check_launch("ssd_segment_decay");
}

size_t ssd_scan_workspace(const SsdShape& s) {
  check_shape(s, "cuda::ssd_scan_workspace");
  if (s.len <= 0 || s.chunk <= 0) return 0;
  const int64_t Q = std::min(s.chunk, s.len), total = (s.len + Q - 1) / Q;
  const int64_t m = ssd_scan_chunks_per_pass(s, kSsdPassScratchBytes);
  return ssd_scan_scratch(s, std::max<int64_t>(m, 1), m < total).bytes;
}

size_t ssd_state_correction_workspace(const SsdShape& s) {
  check_shape(s, "cuda::ssd_state_correction_workspace");
  return s.len > 0 ? ssd_state_correction_scratch(s).bytes : 0;
}

void ssd_state_correction(const SsdShape& s, const float* dt, const float* A, const float* C,
                          int64_t ld_c, const float* incoming_state, float* y, int64_t ld_y,
                          float* final_state, const Workspace& ws, GpuStream stream) {
  check_shape(s, "cuda::ssd_state_correction");
  const int64_t L = s.len, H = s.heads, P = s.head_dim, G = s.groups, N = s.state;
  const int64_t hpg = H / G, state_elems = H * P * N;
  if (L == 0) {  // no outputs; the state passes with decay 1
    if (final_state) {
      correction_final_kernel<<<detail::grid_for(state_elems, 256), 256, 0, stream>>>(
          H, P * N, nullptr, incoming_state, final_state);
      detail::check_launch("ssd_state_correction");
    }
    return;
  }
  // Chunks only block the cumulative sum (parallel over chunks, then a short
  // prefix over chunk totals); the result does not depend on their size.
  const SsdCorrectionScratch lay = ssd_state_correction_scratch(s);
  const int64_t Q = lay.chunk, chunks = lay.chunks;
  if (ws.data && ws.bytes < lay.bytes)
    throw std::invalid_argument("cuda::ssd_state_correction: the workspace holds " + std::to_string(ws.bytes) +
                                " bytes, " + std::to_string(lay.bytes) + " needed (ssd_state_correction_workspace)");
  char* base = scratch_base(ws, lay.bytes, "ssd_state_correction");
  struct {
    double *cs, *offset;
    float* decay;
  } buf{reinterpret_cast<double*>(base + lay.cs), reinterpret_cast<double*>(base + lay.offset),
        reinterpret_cast<float*>(base + lay.decay)};

  // Grid x of the cumsum kernel is the chunk count: at most 2^31 - 1.
  chunk_cumsum_kernel<<<static_cast<unsigned>(chunks), 128, 0, stream>>>(L, H, Q, dt, A, buf.cs, nullptr, nullptr, nullptr, nullptr, false);
  detail::check_launch("ssd_state_correction");
  chunk_offsets_kernel<<<static_cast<unsigned>((H + 127) / 128), 128, 0, stream>>>(L, H, Q, chunks, buf.cs,
                                                                        buf.offset);
  detail::check_launch("ssd_state_correction");
  correction_decay_kernel<<<detail::grid_for(L * H, 256), 256, 0, stream>>>(L, H, Q, buf.cs, buf.offset,
                                                                 buf.decay);
  detail::check_launch("ssd_state_correction");
  const dim3 grid(static_cast<unsigned>(tiles(L) * tiles(P)), static_cast<unsigned>(H));
  correction_kernel<<<grid, kThreads, 0, stream>>>(L, H, P, hpg, N, C, ld_c, incoming_state, buf.decay, y, ld_y);
  detail::check_launch("ssd_state_correction");
  if (final_state) {
    // decay at the last token is exp(A * sum of all dt).
    correction_final_kernel<<<detail::grid_for(state_elems, 256), 256, 0, stream>>>(
        H, P * N, buf.decay + (L - 1) * H, incoming_state, final_state);
    detail::check_launch("ssd_state_correction");
  }
}

}  // namespace ringscan::kernels::cuda
