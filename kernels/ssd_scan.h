#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "gpu_op.h"

namespace ringscan::kernels {
// Mamba-2 selective state-space scan (SSD). Per head h, with state
// S (head_dim x state), scalar decay a_t = exp(dt[t,h] * A[h]) and group
// g = h / (heads / groups) (repeat-interleave: consecutive heads share a group):
//   S_t = a_t * S_{t-1} + dt[t,h] * x[t,h,:] (outer) B[t,g,:]
//   y[t,h,:] = S_t @ C[t,g,:]
// S_{-1} = init_state (zeros when null). The D*x skip term is NOT included
// (the mixer adds it). final_state (if not null) receives S_{len-1}.
//
// The fast CPU version works in chunks of `chunk` tokens in matrix form
// (intra-chunk outputs as small GEMMs with the decay-masked C B^T, chunk states
// as GEMMs, a short sequential pass over chunk states), so prefill time is
// dominated by GEMMs. Any len (including len % chunk != 0, len < chunk, 1).
//
// Layouts (row leading dimensions in elements):
//   x  [len, heads * head_dim]  ld_x        dt [len, heads] contiguous
//   B  [len, groups * state]    ld_b        C  [len, groups * state]  ld_c
//   A  [heads] (negative: A = -exp(A_log))
//   init_state / final_state [heads, head_dim, state] contiguous
//   y  [len, heads * head_dim]  ld_y (overwritten)
struct SsdShape {
  int64_t len;
  int64_t heads;
  int64_t head_dim;
  int64_t groups;
  int64_t state;
  int64_t chunk;
};

// The shape every SSD op (scan, correction, step; every backend) accepts;
// `who` names the op in the exception.
inline void check_ssd_shape(const SsdShape& s, const char* who) {
  if (s.len < 0 || s.heads <= 0 || s.head_dim <= 0 || s.groups <= 0 || s.state <= 0 || s.heads % s.groups != 0)
    throw std::invalid_argument(std::string(who) +
                                ": expected len >= 0, positive heads/head_dim/groups/state "
                                "and heads divisible by groups");
}

// Scratch of cuda::ssd_scan for passes of `chunks` chunks (byte offsets of
// its buffers, each 256-byte aligned, and the total): per chunk its states,
// its groups' C B^T, per (token, head) cs (a double), exp(cs) and w, and its
// decays; plus the state carried between passes when there are several.
// Host arithmetic (every build: the GPU memory plan sizes workspaces with it).
// Byte offsets of buffers carved one after another out of one scratch
// allocation, each 256-byte aligned; `bytes` is the total so far.
struct ScratchCarver {
  size_t bytes = 0;
  size_t take(int64_t n, size_t elem) {
    const size_t off = (bytes + 255) / 256 * 256;
    bytes = off + static_cast<size_t>(n) * elem;
    return off;
  }
};
struct SsdScanScratch {
  size_t cs = 0, exp_cs = 0, w = 0, decay = 0, states = 0, cb = 0, carry = 0, bytes = 0;
};
inline SsdScanScratch ssd_scan_scratch(const SsdShape& s, int64_t chunks, bool carry) {
  const int64_t Q = s.chunk < s.len ? s.chunk : s.len, H = s.heads, state_elems = s.heads * s.head_dim * s.state;
  ScratchCarver c;
  SsdScanScratch r;
  r.cs = c.take(chunks * Q * H, 8);
  r.exp_cs = c.take(chunks * Q * H, 4);
  r.w = c.take(chunks * Q * H, 4);
  r.decay = c.take(chunks * H, 4);
  r.states = c.take(chunks * state_elems, 4);
  r.cb = c.take(chunks * s.groups * Q * Q, 4);
  r.carry = carry ? c.take(state_elems, 4) : 0;
  r.bytes = c.bytes;
  return r;
}
// Scratch of cuda::ssd_state_correction over s.len tokens: cs (a double) and
// the decay per (token, head), the chunk offsets (doubles, chunks + 1 per
// head). Chunks only block its cumulative sum (default 256 tokens).
struct SsdCorrectionScratch {
  int64_t chunk = 0, chunks = 0;
  size_t cs = 0, offset = 0, decay = 0, bytes = 0;
};
inline SsdCorrectionScratch ssd_state_correction_scratch(const SsdShape& s) {
  SsdCorrectionScratch r;
  r.chunk = s.chunk > 0 ? (s.chunk < s.len ? s.chunk : s.len) : (s.len < 256 ? s.len : 256);
  r.chunks = r.chunk > 0 ? (s.len + r.chunk - 1) / r.chunk : 0;
  ScratchCarver c;
  r.cs = c.take(s.len * s.heads, 8);
  r.offset = c.take((r.chunks + 1) * s.heads, 8);
  r.decay = c.take(s.len * s.heads, 4);
  r.bytes = c.bytes;
  return r;
}
// Chunks per pass of cuda::ssd_scan given room for at most `max_bytes` of
// scratch (also at most 65535, the grid limit): as many as fit, 0 if not even
// one does. Passes of all chunks need ssd_scan_scratch(s, all, false).bytes.
inline int64_t ssd_scan_chunks_per_pass(const SsdShape& s, size_t max_bytes) {
  if (s.len <= 0 || s.chunk <= 0) return 0;
  const int64_t Q = s.chunk < s.len ? s.chunk : s.len, total = (s.len + Q - 1) / Q;
  const int64_t cap = total < 65535 ? total : 65535;
  if (cap == total && ssd_scan_scratch(s, total, false).bytes <= max_bytes) return total;
  int64_t lo = 0, hi = cap;  // the largest m with scratch(m, carry).bytes <= max_bytes
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (ssd_scan_scratch(s, mid, true).bytes <= max_bytes) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
// The default scratch budget of one pass (256 MiB): for Nemotron 3 Nano 4B
// (96 x 80 x 128 state, 8 groups, chunk 256) about 40 chunks (10k tokens) per
// pass, which still gives every stage tens of thousands of blocks.
constexpr size_t kSsdPassScratchBytes = size_t{256} << 20;

#define RINGSCAN_SSD_SCAN_SIG                                                            \
  (const SsdShape& s, const float* x, int64_t ld_x, const float* dt, const float* A,    \
   const float* B, int64_t ld_b, const float* C, int64_t ld_c, const float* init_state, \
   float* y, int64_t ld_y, float* final_state)

// Adds the contribution of an incoming state H (what sequence parallelism
// learns only after the local scan) to outputs computed from a zero state:
//   y[t,h,:] += exp(A[h] * sum_{s<=t} dt[s,h]) * (H[h] @ C[t,g,:])
// and, if final_state is not null, adds exp(A[h] * sum_all dt) * H[h] to it.
// chunk is unused here except as a blocking hint.
#define RINGSCAN_SSD_STATE_CORRECTION_SIG                                               \
  (const SsdShape& s, const float* dt, const float* A, const float* C, int64_t ld_c,    \
   const float* incoming_state, float* y, int64_t ld_y, float* final_state)

// A segment's total decay per head, what the sequence-parallel state scan
// combines (DESIGN.md §4.3): decay[h] = exp(A[h] * sum_t dt[t, h]) over the
// s.len rows of dt ([len, heads], contiguous), the sum in double. len 0 gives 1.
#define RINGSCAN_SSD_SEGMENT_DECAY_SIG (const SsdShape& s, const float* dt, const float* A, float* decay)

namespace ref {
void ssd_scan RINGSCAN_SSD_SCAN_SIG;
void ssd_state_correction RINGSCAN_SSD_STATE_CORRECTION_SIG;
void ssd_segment_decay RINGSCAN_SSD_SEGMENT_DECAY_SIG;
}  // namespace ref
namespace cpu {
void ssd_scan RINGSCAN_SSD_SCAN_SIG;
void ssd_state_correction RINGSCAN_SSD_STATE_CORRECTION_SIG;
void ssd_segment_decay RINGSCAN_SSD_SEGMENT_DECAY_SIG;
}  // namespace cpu
#ifdef RINGSCAN_WITH_CUDA
// CUDA (kernels/cuda/ssd_scan.cu): EVERY pointer is a device pointer, A
// included ([heads] floats in device memory), and so are init_state /
// final_state / incoming_state. Runs on `stream` and returns without
// synchronising. Scratch comes from `ws` (the GPU op contract, gpu_op.h):
// ssd_scan processes the sequence in passes of as many chunks as ws holds
// (ssd_scan_workspace: all of them, up to ~256 MiB), carrying the state from
// pass to pass; less than one chunk's scratch throws. An empty ws instead
// takes a per-(host thread, device) buffer that grows on demand (it
// allocates, and a larger need synchronises the device once to free the old
// buffer): for tests and one-off calls, never a layer loop.
// Unlike the CPU version, ssd_scan may be given init_state == final_state (the
// state is then updated in place); no other output may alias an input.
namespace cuda {
void ssd_scan RINGSCAN_CUDA_WS_SIG(RINGSCAN_SSD_SCAN_SIG);
// The same scan with its three GEMM stages (chunk states, C B^T, chunk
// outputs) on the tensor cores: their operands (x, B, C, the decay-weighted
// C B^T and dt, the incoming chunk states) rounded to bf16, products
// accumulated in fp32; cumulative sums, decays, state passing and the
// states themselves stay fp32 (as mamba_ssm's chunked scan does). The CUDA
// test states the error against the reference.
void ssd_scan_bf16 RINGSCAN_CUDA_WS_SIG(RINGSCAN_SSD_SCAN_SIG);
// ssd_scan (ssd_scan_bf16 with tensor_cores) that also records `final_ready`
// (a cudaEvent_t; null: none) on the stream as soon as final_state is
// complete: after the last pass's state passing, before its C B^T and output
// stages. A consumer on another stream that waits for that event (the
// sequence-parallel state scan) then runs while the outputs are computed.
void ssd_scan_signal_final(const SsdShape& s, const float* x, int64_t ld_x, const float* dt, const float* A,
                           const float* B, int64_t ld_b, const float* C, int64_t ld_c, const float* init_state, float* y,
                           int64_t ld_y, float* final_state, bool tensor_cores, void* final_ready,
                           const Workspace& ws = {}, GpuStream stream = nullptr);
// Packed sequences (varlen): the rows of several sequences stacked, seq_idx[t]
// (device, [len], non-decreasing ids >= 0) the sequence of token t. Each
// sequence is scanned from a zero state, in one set of launches for all of
// them: equal to ssd_scan (ssd_scan_bf16 with tensor_cores) over each
// sequence's rows alone with init_state == nullptr. No final states (the
// packed prefill scores short documents whole).
void ssd_scan_varlen(const SsdShape& s, const float* x, int64_t ld_x, const float* dt, const float* A, const float* B,
                     int64_t ld_b, const float* C, int64_t ld_c, const int32_t* seq_idx, float* y, int64_t ld_y,
                     bool tensor_cores, const Workspace& ws = {}, GpuStream stream = nullptr);
void ssd_state_correction RINGSCAN_CUDA_WS_SIG(RINGSCAN_SSD_STATE_CORRECTION_SIG);
// One block per head (no scratch): the GPU sequence-parallel runner's decays
// stay on the device for the NCCL state scan.
void ssd_segment_decay RINGSCAN_CUDA_SIG(RINGSCAN_SSD_SEGMENT_DECAY_SIG);
// Workspace for a scan of s in passes of the default budget (all its chunks
// in one pass when they fit in kSsdPassScratchBytes), and for a state
// correction of s (proportional to its length).
size_t ssd_scan_workspace(const SsdShape& s);
size_t ssd_state_correction_workspace(const SsdShape& s);
}  // namespace cuda
#endif
}  // namespace ringscan::kernels
