// Device-side local steps of the state scan for NcclCommunicator (internal to comm/).
// Packed (a, S) pair layout: n_heads decays, then n_heads * state_elems states.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

namespace ringscan::comm::cuda {

// out = x o y = (x.a * y.a, y.a * x.S + y.S) per head; out may alias x or y.
cudaError_t launch_state_combine(const float* x, const float* y, float* out, int n_heads, std::size_t state_elems,
                                 cudaStream_t stream);

// pair = identity (decays 1, states 0).
cudaError_t launch_state_identity(float* pair, int n_heads, std::size_t state_elems, cudaStream_t stream);

}  // namespace ringscan::comm::cuda
