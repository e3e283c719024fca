// What the GPU sequence-parallel prefill keeps for decoding
// (device_sequence_parallel.h's DeviceSequenceParallelDecodeState; the CPU
// twin is in sequence_parallel.cpp and ring_attention.cpp): device copies
// made on the engine's stream while the forward runs, so on NCCL nothing
// passes through the host.
#include <cuda_runtime.h>

#include <algorithm>

#include "kernels/kv_append.h"
#include "model/cuda/cuda_check.h"
#include "runtime/device_sequence_parallel.h"
#include "runtime/decode.h"
#include "util/error.h"

namespace ringscan {

namespace {
// Room for the new rows decode appends before a cache grows (a rank stores
// about 1/P of them; growing is a copy outside the step's launches).
constexpr int64_t kDecodeHeadroom = 64;
}  // namespace

void DeviceSequenceParallelForward::keep_begin() {
  const ModelConfig& c = model_.config();
  decode_ = DeviceSequenceParallelDecodeState{};
  decode_.driver = layout_.segments.back().owner;
  decode_.length = layout_.length;
  decode_.seq.position = layout_.length;
  decode_.seq.layers.resize(c.layers.size());
  const bool driver = comm_.rank() == decode_.driver;
  const int64_t K1 = c.conv_kernel - 1;
  for (size_t i = 0; i < c.layers.size(); ++i) {
    DeviceLayerCache& l = decode_.seq.layers[i];
    l.kv_dtype = model_.kv_cache_dtype();
    if (c.layers[i] == LayerKind::Attention) {
      model_.reserve_kv(l, layout_.tokens_of(comm_.rank()) + kDecodeHeadroom);
    } else if (c.layers[i] == LayerKind::Mamba && driver) {  // only the driver steps the Mamba layers
      l.conv_history = DeviceBuffer(uint64_t(std::max<int64_t>(K1, 1)) * c.conv_dim() * 4, "a conv history");
      l.ssm_state = DeviceBuffer(uint64_t(c.ssm_state_elems()) * 4, "an SSM state");
    }
  }
  if (driver) decode_.last_hidden = DeviceBuffer(uint64_t(c.hidden_size) * 4, "the prompt's last hidden row");
}

// d_block: this rank's [k rows ; v rows] of the layer (fp32), as the ring passes it.
void DeviceSequenceParallelForward::keep_kv(int layer, const float* d_block, int64_t rows) {
  DeviceLayerCache& l = decode_.seq.layers[layer];
  const int64_t kvd = model_.config().num_kv_heads * model_.config().head_dim;
  if (rows > 0) {
    kernels::cuda::store_rows(d_block, kvd, rows, kvd, l.k.get(), kvd, l.kv_dtype, model_.stream());
    kernels::cuda::store_rows(d_block + rows * kvd, kvd, rows, kvd, l.v.get(), kvd, l.kv_dtype, model_.stream());
  }
  l.kv_rows = rows;
}

void DeviceSequenceParallelForward::keep_conv_history(int layer, const float* d_halo, const float* d_tail, int64_t m,
                                                      int64_t pitch) {
  const ModelConfig& c = model_.config();
  const int64_t K1 = c.conv_kernel - 1, cd = c.conv_dim();
  float* hist = decode_.seq.layers[layer].conv_history.as<float>();
  if (K1 > m)
    cuda_check(cudaMemcpyAsync(hist, d_halo + m * cd, (K1 - m) * cd * 4, cudaMemcpyDeviceToDevice, model_.stream()),
          "conv history copy");
  if (m > 0)
    cuda_check(cudaMemcpy2DAsync(hist + (K1 - m) * cd, cd * 4, d_tail, pitch * 4, cd * 4, m, cudaMemcpyDeviceToDevice,
                            model_.stream()),
          "conv history copy");
}

void DeviceSequenceParallelForward::keep_ssm_state(int layer, const float* state, bool on_host) {
  DeviceBuffer& s = decode_.seq.layers[layer].ssm_state;
  cuda_check(cudaMemcpyAsync(s.get(), state, s.bytes(), on_host ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToDevice,
                        model_.stream()),
        "SSM state copy");
  if (on_host) cuda_check(cudaStreamSynchronize(model_.stream()), "SSM state copy");  // the host vector goes away
}

// The last position's final hidden row goes to the driver, which draws the
// first new token from it (they differ when the last segments are empty, L < 2P).
void DeviceSequenceParallelForward::keep_last_hidden(const std::vector<DevicePiece>& pieces) {
  const int64_t D = model_.config().hidden_size, L = layout_.length;
  if (L == 0) return;
  const int holder = layout_.last_position_owner();
  const int me = comm_.rank(), driver = decode_.driver;
  if (me != holder && me != driver) return;
  const float* row = nullptr;
  for (const auto& p : pieces)
    if (p.seg.len > 0 && p.seg.end() == L) row = p.d_hidden() + (p.seg.len - 1) * D;
  float* dst = me == driver ? decode_.last_hidden.as<float>() : nullptr;
  if (holder == driver) {
    cuda_check(cudaMemcpyAsync(dst, row, D * 4, cudaMemcpyDeviceToDevice, model_.stream()), "last hidden row copy");
    return;
  }
  auto _ = comm_.counter_scope("decode.handoff");
  if (on_device()) {
    if (me == holder) comm_.send(row, D, driver);
    else comm_.recv(dst, D, holder);
    return;
  }
  std::vector<float> host(D);
  if (me == holder) {
    cuda_check(cudaMemcpy(host.data(), row, D * 4, cudaMemcpyDeviceToHost), "last hidden row download");
    comm_.send(host.data(), D, driver);
  } else {
    comm_.recv(host.data(), D, holder);
    cuda_check(cudaMemcpy(dst, host.data(), D * 4, cudaMemcpyHostToDevice), "last hidden row upload");
  }
}

DeviceSequenceParallelDecodeState DeviceSequenceParallelForward::take_decode_state() {
  if (!keep_decode_) throw Error("take_decode_state: call set_keep_decode_state(true) before run()");
  return std::move(decode_);
}

}  // namespace ringscan
