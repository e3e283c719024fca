// The host form of the GPU prefill's decode state (device_sequence_parallel.h's
// download_decode_state): what the CPU engine's SequenceParallelForward hands
// out, so `ringscan prefill --device cuda` saves it with the same save_state
// (runtime/saved_state.h) and the saved directory is the CPU's format, byte
// layout for byte layout. A bf16 KV cache (the bf16 engine's) is widened
// exactly; the Mamba/conv states and the hidden row are fp32 on both sides.
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/weight_view.h"
#include "model/cuda/cuda_check.h"
#include "runtime/device_sequence_parallel.h"
#include "util/error.h"

namespace ringscan {

namespace {


std::vector<float> download_floats(const void* d, int64_t n, const char* what) {
  std::vector<float> h(static_cast<size_t>(n));
  if (n > 0) cuda_check(cudaMemcpy(h.data(), d, n * 4, cudaMemcpyDeviceToHost), what);
  return h;
}

// `rows` rows of `width` elements of a KV cache buffer, widened to fp32.
std::vector<float> download_kv(const DeviceBuffer& d, DType dtype, int64_t rows, int64_t width) {
  const int64_t n = rows * width;
  if (dtype == DType::F32) return download_floats(d.get(), n, "K/V download");
  if (dtype != DType::BF16) throw Error(std::string("download_decode_state: a KV cache in ") + dtype_name(dtype));
  std::vector<uint16_t> raw(static_cast<size_t>(n));
  if (n > 0) cuda_check(cudaMemcpy(raw.data(), d.get(), n * 2, cudaMemcpyDeviceToHost), "K/V download");
  std::vector<float> h(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) h[i] = bf16_to_f32(raw[i]);
  return h;
}

}  // namespace

SequenceParallelDecodeState download_decode_state(DeviceModel& model, const DeviceSequenceParallelDecodeState& st) {
  const ModelConfig& c = model.config();
  // The keep copies were queued on the engine's stream; a synchronous copy
  // is not ordered after a non-blocking stream.
  cuda_check(cudaStreamSynchronize(model.stream()), "the prefill's stream");
  SequenceParallelDecodeState out;
  out.driver = st.driver;
  out.length = st.length;
  out.state.position = st.seq.position;
  out.state.layers.resize(st.seq.layers.size());
  const int64_t kvd = c.num_kv_heads * c.head_dim;
  const int64_t conv = c.conv_history_elems(), ssm = c.ssm_state_elems();
  for (size_t i = 0; i < st.seq.layers.size(); ++i) {
    const DeviceLayerCache& d = st.seq.layers[i];
    LayerCache& h = out.state.layers[i];
    if (c.layers[i] == LayerKind::Attention) {
      h.k = download_kv(d.k, d.kv_dtype, d.kv_rows, kvd);
      h.v = download_kv(d.v, d.kv_dtype, d.kv_rows, kvd);
      h.kv_rows = d.kv_rows;
      h.kv_pos0 = d.kv_pos0;
    } else if (c.layers[i] == LayerKind::Mamba && d.ssm_state.get()) {  // the driver's only
      h.conv_history = download_floats(d.conv_history.get(), conv, "conv history download");
      h.ssm_state = download_floats(d.ssm_state.get(), ssm, "SSM state download");
    }
  }
  if (st.last_hidden.get()) out.last_hidden = download_floats(st.last_hidden.get(), c.hidden_size, "hidden row download");
  return out;
}

}  // namespace ringscan
