#pragma once
#include <array>
#include <cstdint>

#include "gpu_op.h"

namespace ringscan::kernels {
// Next-token choice from one row of logits per sequence, with HF generate's
// warpers in HF's order: temperature, top-k, top-p, then a draw.
//   temperature <= 0: greedy, the argmax (lowest id on ties); nothing else applies.
//   z = logit / temperature; w = exp(z - max z) in double.
//   top_k > 0: keep the ids whose logit is >= the k-th largest (HF keeps every
//     id tied with the k-th, so ties can keep more than k).
//   top_p < 1: order what is left by (w descending, id ascending); keep the
//     ids whose *exclusive* cumulative probability (sum of the ids before it,
//     over the sum of all left) is < top_p: the smallest prefix reaching
//     top_p, at least one id (HF's TopPLogitsWarper, min_tokens_to_keep 1).
//   draw: u in [0, 1) from sampling_uniform(seed, stream, step); walking the
//     kept ids in ascending id order, the first whose cumulative w exceeds
//     u * (sum of kept w) (the last kept id if round-off leaves none).
// The draw depends only on (seed, stream, step) and the row: a document's
// tokens do not depend on what else is in the batch, or on how many ranks
// computed its logits. Use the document's id as stream, its new-token index
// as step.
struct SamplingParams {
  float temperature = 0.f;  // <= 0: greedy
  int32_t top_k = 0;        // <= 0: no limit
  float top_p = 1.f;        // >= 1: no limit
  uint64_t seed = 0;
};

// Philox4x32-10 (Salmon et al., SC'11: the counter-based generator of
// Random123, cuRAND and JAX): a bijection of the 128-bit counter keyed by 64
// bits, statistically independent outputs for distinct counters.
inline std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> ctr, std::array<uint32_t, 2> key) {
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = uint64_t{0xD2511F53u} * ctr[0], p1 = uint64_t{0xCD9E8D57u} * ctr[2];
    ctr = {static_cast<uint32_t>(p1 >> 32) ^ ctr[1] ^ key[0], static_cast<uint32_t>(p1),
           static_cast<uint32_t>(p0 >> 32) ^ ctr[3] ^ key[1], static_cast<uint32_t>(p0)};
    key[0] += 0x9E3779B9u;
    key[1] += 0xBB67AE85u;
  }
  return ctr;
}

// u in [0, 1) with 53 random bits: Philox keyed by seed, counter (stream, step).
inline double sampling_uniform(uint64_t seed, uint64_t stream, uint64_t step) {
  const auto r = philox4x32_10({static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32),
                                static_cast<uint32_t>(step), static_cast<uint32_t>(step >> 32)},
                               {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
  const uint64_t bits = ((uint64_t{r[0]} << 32) | r[1]) >> 11;
  return static_cast<double>(bits) * 0x1.0p-53;
}

// A row whose largest logit is not finite (+inf, or every logit -inf or NaN:
// broken weights or inputs; a NaN logit counts as -inf) gets kSampleNonFinite
// instead of an id, and the other rows their ids as usual: the caller fails
// that sequence alone.
inline constexpr int32_t kSampleNonFinite = -1;
// Row r: logits + r * ld_logits ([vocab] floats), params[r], stream[r],
// step[r] -> out[r]. Bitwise the same ids from ref and cpu: both compute w
// with std::exp in double and sum in the orders stated above.
#define RINGSCAN_SAMPLE_SIG                                                                     \
  (const float* logits, int64_t ld_logits, int64_t rows, int64_t vocab, const SamplingParams* params, \
   const uint64_t* stream, const uint64_t* step, int32_t* out)
namespace ref { void sample RINGSCAN_SAMPLE_SIG; }
namespace cpu { void sample RINGSCAN_SAMPLE_SIG; }
#ifdef RINGSCAN_WITH_CUDA
// logits is a device pointer; params, stream, step and out are HOST arrays
// (the decode loop has the parameters on the host and wants the ids there):
// u is computed on the host, the ids are copied back, so the call returns
// synchronised with the default stream. Greedy rows are bitwise the
// reference's ids. Sampled rows use the same w (exp in double) and the same
// rules, but sum w in another (fixed) order, so an id can differ from ref's
// only when a top-p cut or the draw lies within double round-off of a
// boundary (relative ~1e-15 typically, < 2e-11 at vocab 131072). Top-p orders
// by (logit desc, id asc), the same as (w desc, id asc) unless distinct
// logits give equal w (w underflowing to 0). NaN logits count as -inf. The
// ids depend only on the row and (seed, stream, step), never on the batch.
namespace cuda {
void sample RINGSCAN_SAMPLE_SIG;

// The same draw in the GPU op contract's form (a decode step captured as a
// graph): sample_prepare fills one SampleRow per row on the host (u from
// sampling_uniform, the limits normalised), into memory the caller copies to
// the device (a pinned buffer, asynchronously); sample_rows then runs on
// `stream` from device rows into device ids, never allocating or
// synchronising. cuda::sample above is exactly these two calls.
struct SampleRow {
  double u;      // sampling_uniform(seed, stream, step); 0 for greedy rows
  double T;      // temperature
  double top_p;  // the float top_p, compared in double as the reference does
  int32_t top_k; // > 0 only when it limits (0 < top_k < vocab)
  int32_t greedy;
  int32_t use_top_p;
  int32_t unused = 0;
};
void sample_prepare(const SamplingParams* params, const uint64_t* stream, const uint64_t* step, int64_t rows,
                    int64_t vocab, SampleRow* out);
void sample_rows(const float* logits, int64_t ld_logits, int64_t rows, int64_t vocab, const SampleRow* rows_params,
                 int32_t* out, GpuStream stream);
}  // namespace cuda
#endif
}  // namespace ringscan::kernels
