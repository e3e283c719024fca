#pragma once
#include <cstddef>
#include <cstdint>

#include "gpu_op.h"
#include "weight_view.h"

namespace ringscan::kernels {
// Block-wise causal GQA attention with the online softmax. The same block
// routine serves single-rank attention (loop over key blocks), ring attention
// (key blocks arrive from other ranks) and sharded decode (partials merged).
//
// Layouts: q is [lq, q_heads, head_dim] (row leading dimension ld_q), k and v
// are [lk, kv_heads, head_dim] (ld_k, ld_v). Query head h reads KV head
// h / (q_heads / kv_heads) (heads of one KV group are consecutive, as HF's
// repeat_kv). Positions are consecutive within a block: query row i has
// position q_pos0 + i, key row j has k_pos0 + j; with causal, key j is seen by
// query i only when k_pos <= q_pos.
//
// Running state per (query row, head), all fp32:
//   m   [lq, q_heads]            running max of scaled scores (-inf: none yet)
//   l   [lq, q_heads]            running sum of exp(score - m)
//   acc [lq, q_heads, head_dim]  running sum of exp(score - m) * v
struct AttentionShape {
  int64_t q_heads;
  int64_t kv_heads;
  int64_t head_dim;
};

// Sets m = -inf, l = 0, acc = 0.
#define RINGSCAN_ATTENTION_INIT_SIG \
  (const AttentionShape& s, int64_t lq, float* acc, float* m, float* l)
// Folds one key/value block into the running state.
#define RINGSCAN_ATTENTION_BLOCK_SIG                                                    \
  (const AttentionShape& s, const float* q, int64_t ld_q, int64_t lq, int64_t q_pos0,   \
   const float* k, int64_t ld_k, const float* v, int64_t ld_v, int64_t lk, int64_t k_pos0, \
   float scale, bool causal, float* acc, float* m, float* l)
// attention_block with K and V stored as kv_dtype (F32 or BF16, both alike;
// ld_k and ld_v in elements): bf16 rows (a saved state's K/V used in place,
// runtime/saved_state.h) are widened to fp32 inside the kernel, key tile by key
// tile. Widening is exact, so the result equals attention_block on the widened
// rows; the cpu form's bit for bit (the same tiles and products), F32 the same
// call as attention_block.
#define RINGSCAN_ATTENTION_BLOCK_KV_SIG                                                  \
  (const AttentionShape& s, const float* q, int64_t ld_q, int64_t lq, int64_t q_pos0,   \
   DType kv_dtype, const void* k, int64_t ld_k, const void* v, int64_t ld_v, int64_t lk, \
   int64_t k_pos0, float scale, bool causal, float* acc, float* m, float* l)
// Merges another partial state (acc2, m2, l2) over disjoint keys into (acc, m, l).
#define RINGSCAN_ATTENTION_MERGE_SIG                                                    \
  (const AttentionShape& s, int64_t lq, const float* acc2, const float* m2, const float* l2, \
   float* acc, float* m, float* l)
// Packed sequences (varlen): `rows` rows of several sequences stacked in q, k
// and v alike, seq_idx[t] (non-decreasing ids >= 0) the sequence of row t.
// The query of row i sees only the keys of its own sequence (with causal, those
// at or before row i), folded into the running state as attention_block does:
// equal to attention_block over each sequence's rows alone (q_pos0 == k_pos0),
// in one call for all of them (a packed prefill of short documents).
#define RINGSCAN_ATTENTION_VARLEN_SIG                                                    \
  (const AttentionShape& s, const float* q, int64_t ld_q, const float* k, int64_t ld_k,   \
   const float* v, int64_t ld_v, int64_t rows, const int32_t* seq_idx, float scale, bool causal, \
   float* acc, float* m, float* l)
// out[i, h, :] = acc / l (rows with no visible key give zeros); out has ld_out.
#define RINGSCAN_ATTENTION_FINALIZE_SIG                                                 \
  (const AttentionShape& s, int64_t lq, const float* acc, const float* l, float* out,   \
   int64_t ld_out)

namespace ref {
void attention_init RINGSCAN_ATTENTION_INIT_SIG;
void attention_block RINGSCAN_ATTENTION_BLOCK_SIG;
void attention_block_kv RINGSCAN_ATTENTION_BLOCK_KV_SIG;
void attention_merge RINGSCAN_ATTENTION_MERGE_SIG;
void attention_finalize RINGSCAN_ATTENTION_FINALIZE_SIG;
// seq_idx on the host; a decreasing or negative id throws std::invalid_argument.
void attention_varlen RINGSCAN_ATTENTION_VARLEN_SIG;
}  // namespace ref
namespace cpu {
void attention_init RINGSCAN_ATTENTION_INIT_SIG;
void attention_block RINGSCAN_ATTENTION_BLOCK_SIG;
void attention_block_kv RINGSCAN_ATTENTION_BLOCK_KV_SIG;  // cpu only: the GPU has attention_block_mma
void attention_merge RINGSCAN_ATTENTION_MERGE_SIG;
void attention_finalize RINGSCAN_ATTENTION_FINALIZE_SIG;
void attention_varlen RINGSCAN_ATTENTION_VARLEN_SIG;
// How cpu::attention_block(_kv) computes (process-wide; for tests and
// benchmarks, which compare the two): Auto, the default, takes the fused
// AVX-512 kernel (cpu/attention_avx512.h) on CPUs that have AVX-512F for
// tasks of at least 16 packed query rows and the portable sgemm-tile kernel
// otherwise; Portable always the latter; Avx512 always the former (throws
// std::runtime_error where the CPU lacks it). Both are fp32 with the same
// semantics and differ by round-off (the kernel tests' tolerances).
enum class CpuAttentionPath { Auto, Portable, Avx512 };
void set_attention_path(CpuAttentionPath path);
bool attention_avx512_available();
}  // namespace cpu
#ifdef RINGSCAN_WITH_CUDA
// Device pointers for q, k, v, acc, m, l, acc2, m2, l2 and out (see
// cuda/cuda_common.cuh); the shape stays on the host. head_dim 1..256.
// Same semantics as above (m: running max of scaled scores, -inf none yet; a
// row with no visible key stays m = -inf, l = 0, acc = 0); fp32 arithmetic
// throughout, so results agree with ref to fp32 round-off, not bitwise
// (cuda/attention.cu says how it computes, the CUDA test what it allows).
namespace cuda {
void attention_init RINGSCAN_CUDA_SIG(RINGSCAN_ATTENTION_INIT_SIG);
void attention_block RINGSCAN_CUDA_SIG(RINGSCAN_ATTENTION_BLOCK_SIG);
void attention_merge RINGSCAN_CUDA_SIG(RINGSCAN_ATTENTION_MERGE_SIG);
void attention_finalize RINGSCAN_CUDA_SIG(RINGSCAN_ATTENTION_FINALIZE_SIG);
// seq_idx on the device (ssd_scan_varlen's form), not checked there: it must
// be non-decreasing. One launch over all rows: a CTA's query tile may span
// several sequences and loads only the key tiles its rows can see (from its
// first row's sequence start to its last row), so the work is that of the
// sequences alone plus at most one partial tile per boundary. Never splits
// over keys, never allocates.
void attention_varlen RINGSCAN_CUDA_SIG(RINGSCAN_ATTENTION_VARLEN_SIG);
// The same with the output in out_dtype (F32 or BF16, rounded to nearest even
// once): attention's output as the o_proj GEMM's bf16 input (ld_out in elements).
void attention_finalize_to(const AttentionShape& s, int64_t lq, const float* acc, const float* l, void* out,
                           int64_t ld_out, DType out_dtype, GpuStream stream = nullptr);

// attention_block on the tensor cores (cuda/attention_mma.cu): the same state
// and semantics, with q, k and v given as F32 or BF16 (`dtype`, all three
// alike) and rounded to bf16 for the two products (the softmax weights too);
// scores, m, l and acc stay fp32. Agrees with ref on bf16-rounded inputs to
// the bf16 rounding of the weights (the CUDA test states the bound). Follows
// the GPU op contract (gpu_op.h): runs on `stream`, never allocates or
// synchronises; splits over keys (short queries) use `ws`, at most
// attention_block_mma_workspace() bytes, and are skipped without it.
size_t attention_block_mma_workspace(const AttentionShape& s, int64_t lq, int64_t lk);
void attention_block_mma(const AttentionShape& s, DType dtype, const void* q, int64_t ld_q, int64_t lq,
                         int64_t q_pos0, const void* k, int64_t ld_k, const void* v, int64_t ld_v, int64_t lk,
                         int64_t k_pos0, float scale, bool causal, float* acc, float* m, float* l,
                         const Workspace& ws, GpuStream stream);
// attention_varlen on the tensor cores: attention_block_mma's numerics and
// dtypes with attention_varlen's rows (q, k, v in `dtype`, seq_idx on the
// device). No split over keys, so no workspace.
void attention_varlen_mma(const AttentionShape& s, DType dtype, const void* q, int64_t ld_q, const void* k,
                          int64_t ld_k, const void* v, int64_t ld_v, int64_t rows, const int32_t* seq_idx, float scale,
                          bool causal, float* acc, float* m, float* l, GpuStream stream);
// Tuning (benchmarks): warps per CTA of attention_block_mma, 4 (the default;
// the environment's RINGSCAN_ATTN_WARPS=8 chooses 8) or 8 (128 query rows per
// CTA: K/V tiles shared by twice the rows, fewer CTAs). Process-wide.
void set_attention_mma_warps(int warps);

#ifdef RINGSCAN_WITH_CUDNN
// Attention through cuDNN's fused flash attention (SDPA forward, built with
// cudnn-frontend; cuda/attention_cudnn.cpp): the alternative to
// attention_block_mma, chosen by measurement (bench_gpu). Defined when CMake
// found cuDNN 9 and the frontend headers (RINGSCAN_WITH_CUDNN; see
// kernels/CMakeLists.txt and scripts/cudnn-deps.sh); the emulator never has it.
//
// One whole attention over a block of keys, not a fold into a running state:
// q [lq, q_heads, head_dim], k and v [lk, kv_heads, head_dim], all BF16 with
// row strides (elements, multiples of 8; pointers 16-byte aligned), GQA as
// above (query head h reads KV head h / (q_heads / kv_heads)). It writes the
// normalised output out [lq, q_heads, head_dim] (row stride ld_out, BF16 or
// F32) and lse [lq, q_heads] (fp32, packed) = the natural-log sum of exp of
// the row's visible scaled scores, i.e. the reference state's m + log(l).
// So (acc = out, m = lse, l = 1) is this block's running state, which
// attention_merge combines with others (ring attention, sharded decode) and
// attention_block can keep folding into: attention_cudnn_to_state writes it.
//
// Masks (positions are those of attention_block):
//   none          every key is visible
//   top_left      query i sees keys j <= i (q_pos0 == k_pos0: a diagonal block)
//   bottom_right  query i sees keys j <= i + lk - lq (the last query sees every
//                 key: queries after a KV cache, q_pos0 == k_pos0 + lk - lq);
//                 needs lq <= lk
// Every row sees at least one key under these masks.
//
// Numerics: bf16 products, fp32 scores, softmax statistics and accumulation
// (cuDNN's flash attention: P rounded to bf16 before P V), O rounded once to
// bf16 (an F32 `out` holds that bf16 value). Error bounds:
// tests/kernels_cuda/test_attention_cudnn_cuda.cpp.
//
// Plans: the first call for a given CudnnAttention (every field counts) and
// device builds a cuDNN graph and plan (milliseconds to seconds: cuDNN may
// compile its kernel with NVRTC; it allocates) and caches it for the process;
// later calls only execute it, on `stream`, with `ws` as scratch, never
// allocating or synchronising (the GPU op contract of gpu_op.h after that
// first call; a layer loop should make its first calls, or
// attention_cudnn_workspace, before it is timed or captured).
// One cudnnHandle per device, its stream set per call. Errors: a bad argument
// throws std::invalid_argument; a graph cuDNN refuses (head_dim, architecture,
// library version) or a failed execution throws std::runtime_error naming the
// op, the shape and what cuDNN said: never a silent fallback.
enum class CudnnMask : uint8_t { none, top_left, bottom_right };

struct CudnnAttention {
  AttentionShape s{};
  int64_t lq = 0, lk = 0;
  int64_t ld_q = 0, ld_k = 0, ld_v = 0, ld_out = 0;  // row strides in elements; 0: packed (heads * head_dim)
  CudnnMask mask = CudnnMask::none;
  float scale = 1.f;               // applied to q . k before the softmax
  DType out_dtype = DType::BF16;   // BF16 (written by cuDNN) or F32 (widened from it)
};

// The workspace attention_cudnn_fwd needs for `a` (cuDNN's plus, for an F32
// out or a cuDNN older than 9.12, a staging area), in bytes. Builds and caches
// the plan if it is not there yet (so needs the device, like the call).
size_t attention_cudnn_workspace(const CudnnAttention& a);

// Runs the cached (or newly built) plan for `a`. ws must hold at least
// attention_cudnn_workspace(a) bytes (less throws: cuDNN has no smaller way);
// lse is required (lq * q_heads floats).
void attention_cudnn_fwd(const CudnnAttention& a, const void* q, const void* k, const void* v, void* out, float* lse,
                         const Workspace& ws, GpuStream stream);

// The running state of a block from its BF16 output (row stride ld_out) and
// lse: acc = out (widened), m = lse, l = 1, in the layouts of attention_block
// (acc [lq, q_heads, head_dim] packed, m and l [lq, q_heads]).
void attention_cudnn_to_state(const AttentionShape& s, int64_t lq, const void* out_bf16, int64_t ld_out,
                              const float* lse, float* acc, float* m, float* l, GpuStream stream);

// How many cuDNN plans this process has built (a cache miss each): tests
// check that repeated calls reuse them.
int64_t attention_cudnn_plans_built();
// The cuDNN library version in use (cudnnGetVersion(), e.g. 91900) and the
// one the code was compiled against (CUDNN_VERSION), for logs and benchmarks.
int64_t attention_cudnn_version();
int64_t attention_cudnn_compiled_version();
#endif  // RINGSCAN_WITH_CUDNN
}  // namespace cuda
#endif
}  // namespace ringscan::kernels
