// The combine of the state scan on the GPU. Not yet run on a GPU (see
// nccl_communicator.h); the same operator runs on the host in
// MpiCommunicator::local_combine, which the tests check.
#include "nccl_state_kernels.h"

namespace ringscan::comm::cuda {

namespace {

constexpr int kThreads = 256;

// One block per head. out may alias x or y: every thread reads the head's two
// decays before the barrier and only thread 0 writes the decay after it; each
// state element is read and written by the same thread.
__global__ void state_combine_kernel(const float* x, const float* y, float* out, int n_heads,
                                     std::size_t state_elems) {
  const int h = blockIdx.x;
  const float xa = x[h], ya = y[h];
  const std::size_t row = static_cast<std::size_t>(n_heads) + static_cast<std::size_t>(h) * state_elems;
  for (std::size_t e = threadIdx.x; e < state_elems; e += blockDim.x) out[row + e] = ya * x[row + e] + y[row + e];
  __syncthreads();
  if (threadIdx.x == 0) out[h] = xa * ya;
}

__global__ void state_identity_kernel(float* pair, std::size_t n_heads, std::size_t total) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    pair[i] = i < n_heads ? 1.0f : 0.0f;
}

}  // namespace

cudaError_t launch_state_combine(const float* x, const float* y, float* out, int n_heads, std::size_t state_elems,
                                 cudaStream_t stream) {
  if (n_heads <= 0) return cudaSuccess;
  state_combine_kernel<<<n_heads, kThreads, 0, stream>>>(x, y, out, n_heads, state_elems);
  return cudaGetLastError();
}

cudaError_t launch_state_identity(float* pair, int n_heads, std::size_t state_elems, cudaStream_t stream) {
  const std::size_t nh = static_cast<std::size_t>(n_heads);
  const std::size_t total = nh * (1 + state_elems);
  if (total == 0) return cudaSuccess;
  const std::size_t blocks = (total + kThreads - 1) / kThreads;
  state_identity_kernel<<<static_cast<unsigned>(blocks < 1024 ? blocks : 1024), kThreads, 0, stream>>>(pair, nh, total);
  return cudaGetLastError();
}

}  // namespace ringscan::comm::cuda
