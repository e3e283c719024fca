// What the DeviceModel's source files share: a layer's device weights and
// the CUDA error check.
#pragma once
#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "model/cuda/cuda_check.h"
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

// An event the engine owns (destroyed with it).
struct DeviceModel::EventHandle {
  cudaEvent_t e = nullptr;
  EventHandle() {
    if (cudaEventCreateWithFlags(&e, cudaEventDisableTiming) != cudaSuccess) e = nullptr;
  }
  ~EventHandle() {
    if (e) cudaEventDestroy(e);
  }
};

// A captured decode step for `rows` rows (device_decode_step.cpp).
struct DeviceModel::Graph {
  int64_t rows = 0;
  cudaGraphExec_t exec = nullptr;
  uint64_t last_use = 0;
  ~Graph() {
    if (exec) cudaGraphExecDestroy(exec);
  }
};

// Entry `index`'s array (a layer's, for the per-layer arrays) of a decode
// table at `offset`, in the device or the pinned host copy.
template <class T>
T* DeviceModel::table(uint64_t offset, int index, bool device) const {
  return reinterpret_cast<T*>((device ? d_tables_ : h_tables_) + offset) + int64_t{index} * tables_.rows;
}

}  // namespace ringscan
