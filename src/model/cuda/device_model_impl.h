// What the DeviceModel's source files share: a layer's device weights and
// the CUDA error check.
#pragma once
#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "model/device_model.h"
#include "util/error.h"

namespace ringscan {

struct DeviceModel::Layer {
  LayerKind kind = LayerKind::Mlp;
  WeightView norm;
  // Mamba (A = -exp(A_log) and D as fp32 [heads])
  WeightView in_proj, conv_w, conv_b, dt_bias, norm_gated, out_proj, A, D;
  std::vector<float> A_host;  // the same A on the host (sequence parallelism composes decays there)
  // Attention: q, k and v are row blocks of qkv (stored contiguously)
  WeightView q, k, v, qkv, o;
  // MLP
  WeightView gate, up, down;
};

// A failed CUDA call in the engine: a broken device or a bug, named.
inline void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(std::string("CUDA: ") + what + " failed: " + cudaGetErrorString(e));
}

}  // namespace ringscan
