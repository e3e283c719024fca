// The GPU op contract (DESIGN.md §3): a CUDA op runs on the caller's stream and
// takes its scratch from caller-owned workspace, so nothing inside a layer loop
// allocates, frees or synchronises and a whole step can be captured as a CUDA
// graph. Plain declarations, so that CPU-only code can name them.
#pragma once
#include <cstddef>

struct CUstream_st;

namespace ringscan::kernels {

using GpuStream = CUstream_st*;  // the same type as cudaStream_t (null: the legacy default stream)

// Device memory an op may use for the duration of its call, in stream order.
// An op asks for at most what its *_workspace() function says; given less, it
// takes a slower way that fits, never an allocation.
struct Workspace {
  void* data = nullptr;
  size_t bytes = 0;
};

}  // namespace ringscan::kernels

// A CUDA op's declaration from its shared signature macro: the same
// parameters plus the stream it runs on (null: the legacy default stream), e.g.
//   namespace cuda { void rmsnorm RINGSCAN_CUDA_SIG(RINGSCAN_RMSNORM_SIG); }
#define RINGSCAN_APPEND_STREAM(...) (__VA_ARGS__, ::ringscan::kernels::GpuStream stream = nullptr)
#define RINGSCAN_CUDA_SIG(sig) RINGSCAN_APPEND_STREAM sig
// The same plus caller-owned workspace before the stream (ops that need scratch).
#define RINGSCAN_APPEND_WS_STREAM(...) \
  (__VA_ARGS__, const ::ringscan::kernels::Workspace& ws = {}, ::ringscan::kernels::GpuStream stream = nullptr)
#define RINGSCAN_CUDA_WS_SIG(sig) RINGSCAN_APPEND_WS_STREAM sig
