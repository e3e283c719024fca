// Next-token sampling on the GPU: one block of 512 threads per row, no sort.
//
//   argmax (lowest id on ties): per-thread scan + a block reduction on the
//     total order (value descending, id ascending): bitwise the reference's.
//   w_i = exp(x_i / T - x_max / T) in double, recomputed where needed (never
//     stored: a row of 131072 doubles would be 1 MiB of scratch).
//   top-k and top-p: radix select on the float bits of the logits (a
//     monotone 32-bit key), 8 passes of 4 bits over the row. Each pass
//     histograms the candidates still sharing the chosen high bits into 16
//     buckets, with counts and (for top-p) sums of w, and keeps the lowest
//     bucket whose largest element is still kept:
//       top-k: fewer than k ids above it: it is >= the k-th largest logit;
//       top-p: nothing above it, or (sum of w above) / total < top_p.
//     Both conditions only weaken as the threshold goes down, so the descent
//     ends at the exact threshold logit. Top-k keeps every id >= its
//     threshold (ties included, as HF). For top-p the ids tied at the
//     threshold are kept in ascending id order while their exclusive
//     cumulative sum (sum above + t * w) / total stays < top_p.
//   draw: target = u * (sum of kept w), u from sampling_uniform computed on
//     the host; each thread walks a contiguous chunk of ids from the
//     exclusive prefix sum of the chunk totals; the smallest id whose
//     cumulative w exceeds the target wins (the largest kept id if round-off
//     leaves none).
// Every sum is a fixed tree (per-thread serial sums, xor-butterflies inside a
// warp, warps in order): the same ids on every run, for any batch.
//
// Differences from the reference (sampling.h states them for users):
//   - sums of w are in a different order (and the device exp may differ from
//     the host's by an ulp of double), so a top-p cut or a draw can differ
//     only when it lies within double round-off of a boundary: relative
//     ~1e-15 typically, < 2e-11 at vocab 131072 in the worst case;
//   - top-p orders ids by (logit descending, id ascending) instead of
//     (w descending, id ascending): the same order except where distinct
//     logits have equal w (w underflowing to 0, never inside the kept
//     prefix, or logits closer than ~1e-16 * T);
//   - a NaN logit counts as -inf (the reference's result is unspecified then).
#include <climits>
#include <cmath>
#include <vector>

#include "cuda/cuda_common.cuh"
#include "sampling.h"

namespace ringscan::kernels::cuda {
namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr int kBuckets = 16;  // 4 bits per radix pass, 8 passes over 32 bits

using RowParams = SampleRow;

struct Smem {
  int cnt[kWarps][kBuckets];
  double sum[kWarps][kBuckets];
  double dred[kWarps];
  int ired[kWarps];
  float fred[kWarps];
  int id_lim;
};

// NaN -> -inf, -0 -> +0: equal keys <=> equal values, for every float.
__device__ __forceinline__ float canon(float x) { return isnan(x) ? -INFINITY : (x == 0.f ? 0.f : x); }

// Monotone: a > b <=> key(a) > key(b).
__device__ __forceinline__ uint32_t key_of(float x) {
  const uint32_t b = __float_as_uint(canon(x));
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
__device__ __forceinline__ float float_of(uint32_t key) {
  return __uint_as_float((key & 0x80000000u) ? (key & 0x7fffffffu) : ~key);
}

// The reference's w, in double: exp(x / T - zmax) with zmax = x_max / T.
__device__ __forceinline__ double weight(float x, double T, double zmax) {
  return exp(static_cast<double>(canon(x)) / T - zmax);
}

template <class V>
__device__ __forceinline__ V warp_sum(V v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);  // same in every lane
  return v;
}

// Block min / max of an int, in every thread.
__device__ int block_min(int v, Smem& sm) {
  for (int o = 16; o > 0; o >>= 1) v = min(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();
  if ((threadIdx.x & 31) == 0) sm.ired[threadIdx.x >> 5] = v;
  __syncthreads();
  int r = INT_MAX;
  for (int w = 0; w < kWarps; ++w) r = min(r, sm.ired[w]);
  return r;
}
__device__ int block_max(int v, Smem& sm) { return -block_min(-v, sm); }

// Exclusive prefix sums over threads in thread order (inclusive warp scans,
// then the warp totals in order); *total gets the block's sum. Deterministic.
template <class V>
__device__ V block_exclusive_scan(V v, V* total, V* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  V inc = v;
  for (int o = 1; o < 32; o <<= 1) {
    const V up = __shfl_up_sync(0xffffffffu, inc, o);
    if (lane >= o) inc += up;
  }
  __syncthreads();
  if (lane == 31) scratch[warp] = inc;
  __syncthreads();
  V before = 0, all = 0;
  for (int w = 0; w < kWarps; ++w) {
    if (w < warp) before += scratch[w];
    all += scratch[w];
  }
  *total = all;
  return before + inc - v;
}

// Argmax with the lowest id on ties: the maximum of the order (value
// descending, id ascending), which is commutative, so any tree gives it.
__device__ __forceinline__ void better(float& bv, int& bi, float v, int i) {
  if (v > bv || (v == bv && i < bi)) bv = v, bi = i;
}

struct Descent {
  uint32_t key;     // the threshold logit's key
  int above_cnt;    // candidates with a larger key
  double above_sum; // their w (top-p only)
  int tie_cnt;      // candidates with exactly this key
  double total;     // w of all candidates (top-p only)
};

// Radix descent over the candidates (keys >= min_key) for the smallest key v
// whose first id is still kept: kTopP ? (nothing above, or sum above / total
// < top_p) : (fewer than top_k above). Uniform control flow; every thread
// returns the same result.
template <bool kTopP>
__device__ Descent radix_descend(const float* x, int V, uint32_t min_key, const RowParams& rp,
                                 double zmax, Smem& sm) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  uint32_t prefix = 0;
  Descent r{0, 0, 0.0, 0, 0.0};
  for (int pass = 0; pass < 8; ++pass) {
    const int shift = 28 - 4 * pass;
    int cnt[kBuckets];
    double sum[kBuckets];
#pragma unroll
    for (int b = 0; b < kBuckets; ++b) cnt[b] = 0, sum[b] = 0.0;
    for (int i = threadIdx.x; i < V; i += kThreads) {
      const uint32_t key = key_of(x[i]);
      if (key < min_key) continue;
      if (pass > 0 && (key >> (shift + 4)) != prefix) continue;
      const int bucket = (key >> shift) & (kBuckets - 1);
      const double w = kTopP ? weight(x[i], rp.T, zmax) : 0.0;
      // Static indices keep the bins in registers.
#pragma unroll
      for (int b = 0; b < kBuckets; ++b)
        if (bucket == b) {
          ++cnt[b];
          if (kTopP) sum[b] += w;
        }
    }
#pragma unroll
    for (int b = 0; b < kBuckets; ++b) {
      const int c = warp_sum(cnt[b]);
      const double s = kTopP ? warp_sum(sum[b]) : 0.0;
      if (lane == 0) sm.cnt[warp][b] = c, sm.sum[warp][b] = s;
    }
    __syncthreads();
    int C[kBuckets];
    double S[kBuckets];
#pragma unroll
    for (int b = 0; b < kBuckets; ++b) {
      C[b] = 0, S[b] = 0.0;
      for (int w = 0; w < kWarps; ++w) C[b] += sm.cnt[w][b], S[b] += sm.sum[w][b];
    }
    __syncthreads();  // the bins are read: the next pass may overwrite them
    if (pass == 0 && kTopP)
      for (int b = kBuckets - 1; b >= 0; --b) r.total += S[b];
    // From the top bucket down: the last non-empty bucket whose largest element
    // is kept. The first non-empty one always is (its largest element is the
    // largest candidate, or the previous pass's kept element).
    int chosen = -1, ac = r.above_cnt, ch_ac = 0;
    double as = r.above_sum, ch_as = 0.0;
#pragma unroll
    for (int b = kBuckets - 1; b >= 0; --b) {
      if (C[b] == 0) continue;
      const bool kept = kTopP ? (ac == 0 || as / r.total < rp.top_p) : ac < rp.top_k;
      if (!kept) break;
      chosen = b, ch_ac = ac, ch_as = as;
      ac += C[b], as += S[b];
    }
    if (chosen < 0) chosen = 0;  // unreachable (see above); keeps the index in range
    prefix = (prefix << 4) | static_cast<uint32_t>(chosen);
    r.above_cnt = ch_ac, r.above_sum = ch_as;
#pragma unroll
    for (int b = 0; b < kBuckets; ++b)
      if (b == chosen) r.tie_cnt = C[b];
  }
  r.key = prefix;
  return r;
}

__global__ void __launch_bounds__(kThreads)
    sample_kernel(const float* logits, int64_t ld, int64_t rows, int V, const RowParams* params,
                  int32_t* out) {
  __shared__ Smem sm;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float* x = logits + row * ld;
    const RowParams rp = params[row];

    // Argmax, lowest id on ties.
    float bv = -INFINITY;
    int bi = INT_MAX;
    for (int i = threadIdx.x; i < V; i += kThreads) better(bv, bi, canon(x[i]), i);
    for (int o = 16; o > 0; o >>= 1)
      better(bv, bi, __shfl_xor_sync(0xffffffffu, bv, o), __shfl_xor_sync(0xffffffffu, bi, o));
    __syncthreads();
    if (lane == 0) sm.fred[warp] = bv, sm.ired[warp] = bi;
    __syncthreads();
    bv = -INFINITY, bi = INT_MAX;
    for (int w = 0; w < kWarps; ++w) better(bv, bi, sm.fred[w], sm.ired[w]);
    if (!isfinite(bv) || rp.greedy) {
      if (threadIdx.x == 0) out[row] = isfinite(bv) ? bi : kSampleNonFinite;
      continue;  // uniform over the block
    }
    const double zmax = static_cast<double>(bv) / rp.T;

    // Top-k: keep keys >= the k-th largest.
    uint32_t min_key = 0;
    if (rp.top_k > 0) min_key = radix_descend<false>(x, V, min_key, rp, zmax, sm).key;

    // Top-p over what top-k left: keep keys > v, and the first n_keep ids
    // (ascending) of those equal to v, i.e. ids < id_lim.
    uint32_t v_key = 0;
    int id_lim = INT_MAX;
    if (rp.use_top_p) {
      const Descent d = radix_descend<true>(x, V, min_key, rp, zmax, sm);
      v_key = d.key;
      const double wv = weight(float_of(d.key), rp.T, zmax);
      // Tie member t (0-based, ascending id) is kept iff it is the first id
      // overall or (above + t * wv) / total < top_p: true for t = 0 (the
      // descent's choice), then false from some t on. Bisect for that t.
      int lo = 1, hi = d.tie_cnt;
      while (lo < hi) {
        const int mid = lo + (hi - lo) / 2;
        const bool kept = d.above_cnt + mid == 0 || (d.above_sum + mid * wv) / d.total < rp.top_p;
        if (kept) lo = mid + 1;
        else hi = mid;
      }
      const int n_keep = lo;
      if (n_keep < d.tie_cnt) {
        // The n_keep-th id with key v: per-thread counts over contiguous
        // chunks, exclusive scan, then the one chunk that holds it.
        const int chunk = (V + kThreads - 1) / kThreads;
        const int beg = min(V, static_cast<int>(threadIdx.x) * chunk), end = min(V, beg + chunk);
        int c = 0;
        for (int i = beg; i < end; ++i) c += key_of(x[i]) == v_key;
        int all;
        const int before = block_exclusive_scan(c, &all, sm.ired);
        if (before < n_keep && before + c >= n_keep) {
          int seen = before;
          for (int i = beg; i < end; ++i)
            if (key_of(x[i]) == v_key && ++seen == n_keep) {
              sm.id_lim = i + 1;
              break;
            }
        }
        __syncthreads();
        id_lim = sm.id_lim;
      }
    }

    // Draw: kept ids in ascending order, first cumulative w > u * kept total.
    auto kept = [&](int i, uint32_t key) {
      return key >= min_key && (!rp.use_top_p || key > v_key || (key == v_key && i < id_lim));
    };
    const int chunk = (V + kThreads - 1) / kThreads;
    const int beg = min(V, static_cast<int>(threadIdx.x) * chunk), end = min(V, beg + chunk);
    double s = 0.0;
    int last = -1;
    for (int i = beg; i < end; ++i)
      if (kept(i, key_of(x[i]))) s += weight(x[i], rp.T, zmax), last = i;
    double kept_total;
    const double before = block_exclusive_scan(s, &kept_total, sm.dred);
    const double target = rp.u * kept_total;
    int pick = INT_MAX;
    if (s > 0.0) {  // a chunk of zero weights cannot be the first to exceed the target
      double cum = before;
      for (int i = beg; i < end; ++i) {
        if (!kept(i, key_of(x[i]))) continue;
        const double w = weight(x[i], rp.T, zmax);
        cum += w;
        if (w > 0.0 && cum > target) {  // as the reference, a zero weight never wins a draw
          pick = i;
          break;
        }
      }
    }
    pick = block_min(pick, sm);
    last = block_max(last, sm);
    if (threadIdx.x == 0) out[row] = pick != INT_MAX ? pick : last;
    __syncthreads();  // shared memory is reused by the next row
  }
}

}  // namespace

void sample_prepare(const SamplingParams* params, const uint64_t* stream, const uint64_t* step, int64_t rows,
                    int64_t vocab, SampleRow* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const SamplingParams& p = params[r];
    SampleRow& q = out[r];
    q.greedy = p.temperature <= 0.f;
    q.T = p.temperature;
    q.top_k = p.top_k > 0 && p.top_k < vocab ? p.top_k : 0;
    q.use_top_p = p.top_p < 1.f;
    q.top_p = p.top_p;
    q.u = q.greedy ? 0.0 : sampling_uniform(p.seed, stream[r], step[r]);
    q.unused = 0;
  }
}

void sample_rows(const float* logits, int64_t ld_logits, int64_t rows, int64_t vocab, const SampleRow* rows_params,
                 int32_t* out, GpuStream stream) {
  if (vocab <= 0) throw std::invalid_argument("cuda::sample: vocab must be positive");
  if (vocab > INT_MAX / 2) throw std::invalid_argument("cuda::sample: vocab too large");
  if (rows <= 0) return;
  const unsigned grid = static_cast<unsigned>(rows < 65535 * 16 ? rows : 65535 * 16);
  sample_kernel<<<grid, kThreads, 0, stream>>>(logits, ld_logits, rows, static_cast<int>(vocab), rows_params, out);
  detail::check_launch("sample");
}

namespace {
// Device scratch on the legacy stream, freed in stream order on every path
// (the host-array form below only: tests and one-off calls).
struct DeviceScratch {
  void* p = nullptr;
  explicit DeviceScratch(size_t bytes) {
    detail::check_cuda(cudaMallocAsync(&p, bytes, 0), "sample", "cudaMallocAsync");
  }
  ~DeviceScratch() { cudaFreeAsync(p, 0); }
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
};

}  // namespace

void sample(const float* logits, int64_t ld_logits, int64_t rows, int64_t vocab,
            const SamplingParams* params, const uint64_t* stream, const uint64_t* step,
            int32_t* out) {
  if (rows <= 0) return;
  std::vector<RowParams> hp(static_cast<size_t>(rows));
  sample_prepare(params, stream, step, rows, vocab, hp.data());
  const size_t param_bytes = hp.size() * sizeof(RowParams);
  DeviceScratch scratch(param_bytes + static_cast<size_t>(rows) * sizeof(int32_t));
  auto* d_params = static_cast<RowParams*>(scratch.p);
  auto* d_out = reinterpret_cast<int32_t*>(static_cast<char*>(scratch.p) + param_bytes);
  detail::check_cuda(cudaMemcpy(d_params, hp.data(), param_bytes, cudaMemcpyHostToDevice), "sample",
                     "cudaMemcpy of the parameters");
  sample_rows(logits, ld_logits, rows, vocab, d_params, d_out, nullptr);
  // Synchronises with the kernel (out is a host array).
  detail::check_cuda(cudaMemcpy(out, d_out, static_cast<size_t>(rows) * sizeof(int32_t),
                                cudaMemcpyDeviceToHost),
                     "sample", "cudaMemcpy of the ids");
}

}  // namespace ringscan::kernels::cuda
