// Shared by the CUDA kernels: error checks, weight loads from device memory in
// any stored dtype, and block-wide reductions.
//
// Conventions of every ringscan::kernels::cuda op: activations, ids and
// history buffers are device pointers; a WeightView's data points to device
// memory (the shape and dtype fields stay on the host). Kernels run on the
// legacy default stream, so consecutive ops are ordered and a cudaMemcpy after
// them sees their results; ops return without synchronising.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "weight_view.h"

namespace ringscan::kernels::cuda::detail {

// A CUDA failure is a bug or a broken device, not bad input: report which op
// and what the runtime said.
inline void check_cuda(cudaError_t e, const char* op, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("cuda::") + op + ": " + what + " failed: " +
                             cudaGetErrorString(e));
}

// After a kernel launch: catches bad launch configurations (not asynchronous
// faults, which surface at the next synchronising call).
inline void check_launch(const char* op) { check_cuda(cudaGetLastError(), op, "kernel launch"); }

// Element i of a device weight as fp32 (bf16/f16 -> fp32 is exact).
__device__ __forceinline__ float load_weight(const void* p, DType dt, int64_t i) {
  switch (dt) {
    case DType::F32: return static_cast<const float*>(p)[i];
    case DType::BF16: return __uint_as_float(static_cast<uint32_t>(static_cast<const uint16_t*>(p)[i]) << 16);
    case DType::F16: return __half2float(static_cast<const __half*>(p)[i]);
  }
  return 0.f;
}

// One fp32 result stored as fp32 or rounded to bf16 (nearest even): the
// output dtype axis of the ops that feed GEMMs.
__device__ __forceinline__ void store_as(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_as(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Block-wide sum / max; every thread gets the result. blockDim.x must be a
// multiple of 32 (at most 1024). `scratch` holds 32 floats of shared memory;
// the leading __syncthreads lets a block call these back to back.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < nwarps ? scratch[lane] : 0.f;
  return warp_sum(v);
}
__device__ __forceinline__ float block_max(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < nwarps ? scratch[lane] : -INFINITY;
  return warp_max(v);
}

// Grid size for n elements at `block` threads each, capped (kernels loop with a
// grid stride past the cap).
inline unsigned grid_for(int64_t n, int block) {
  const int64_t g = (n + block - 1) / block;
  return static_cast<unsigned>(g < 1 ? 1 : (g > 65535 * 32 ? 65535 * 32 : g));
}

// Scratch device memory for one op (Tag: any type naming it), per (host
// thread, device), at least `bytes` long. It only grows and is never freed
// (freeing from a thread_local destructor at exit can run after the CUDA
// runtime has shut down). Reuse across calls is safe because every op runs on
// the legacy default stream: a later call's kernels start after the earlier
// call's. Growing synchronises the device first, since queued kernels of an
// earlier call may still use the old buffer. A pointer is valid until the next
// call with the same Tag on the same thread and device.
template <class Tag>
void* device_scratch(size_t bytes, const char* op) {
  struct Buffer {
    void* p = nullptr;
    size_t bytes = 0;
  };
  thread_local std::vector<Buffer> buffers;
  int dev = 0;
  check_cuda(cudaGetDevice(&dev), op, "cudaGetDevice");
  if (static_cast<size_t>(dev) >= buffers.size()) buffers.resize(dev + 1);
  Buffer& b = buffers[dev];
  if (b.bytes < bytes) {
    if (b.p) {
      check_cuda(cudaDeviceSynchronize(), op, "cudaDeviceSynchronize before freeing scratch");
      check_cuda(cudaFree(b.p), op, "cudaFree of scratch");
      b = Buffer{};
    }
    check_cuda(cudaMalloc(&b.p, bytes), op, "cudaMalloc of scratch");
    b.bytes = bytes;
  }
  return b.p;
}

}  // namespace ringscan::kernels::cuda::detail
