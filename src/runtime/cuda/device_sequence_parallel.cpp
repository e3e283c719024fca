// The GPU sequence-parallel runner; the CPU runner (sequence_parallel.cpp,
// ring_attention.cpp) is its twin and explains each step.
#include "runtime/device_sequence_parallel.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "kernels/attention.h"
#include "kernels/ssd_scan.h"
#include "model/cuda/cuda_check.h"
#include "model/device_model.h"
#include "runtime/segment_exchange.h"
#include "runtime/sequence_parallel.h"
#include "runtime/work_progress.h"
#include "util/error.h"

namespace ringscan {

namespace {

void to_host(float* h, const float* d, size_t n) { cuda_check(cudaMemcpy(h, d, n * 4, cudaMemcpyDeviceToHost), "download"); }
void to_device(float* d, const float* h, size_t n) { cuda_check(cudaMemcpy(d, h, n * 4, cudaMemcpyHostToDevice), "upload"); }

}  // namespace

// Per piece: the Mamba phase buffers (kept across the state exchange) and the
// queries (kept across the ring); shared: the rest, sized for the longest piece.
// Per-piece exchange buffers (halos, decays, incoming states) let every
// piece's exchange finish before any piece continues.
struct DeviceSequenceParallelForward::Scratch {
  std::vector<DeviceBuffer> proj, conv, dt, y, qkv;
  DeviceBuffer normed, up, gate, history, halo_out, state, decay, incoming, correction, acc, m, l, kv_local, kv_recv,
      kv_recv2;
  DeviceBuffer ones, zeros, idle;  // the state scan's stand-ins for a rank idle in a run (device communicator)
  // Recorded when this rank's segment states and decays are complete (device
  // communicator): the state scan starts there, while the outputs are computed.
  cudaEvent_t states_ready = nullptr;
  ~Scratch() {
    if (states_ready) cudaEventDestroy(states_ready);
  }
};

// Timing events, allocated once per run (nothing is created in the layer loop).
struct DeviceSequenceParallelForward::Timing {
  std::vector<cudaEvent_t> events;
  std::vector<std::pair<int, size_t>> marks;  // (layer, index of its begin event; end is the next)
  size_t used = 0;
  ~Timing() {
    for (cudaEvent_t e : events) cudaEventDestroy(e);
  }
};

DeviceSequenceParallelForward::DeviceSequenceParallelForward(DeviceModel& model, comm::Communicator& comm,
                                                             SequenceLayout layout)
    : model_(model), comm_(comm), layout_(std::move(layout)) {
  if (layout_.ranks != comm.size())
    throw Error("sequence layout for " + std::to_string(layout_.ranks) + " ranks used on a communicator of " +
                std::to_string(comm.size()));
  mine_ = layout_.segments_of(comm.rank());
}

void DeviceSequenceParallelForward::exposed_begin(int layer) {
  if (!timing_) return;
  Timing& t = *timing_;
  if (t.used + 2 > t.events.size()) throw Error("internal: the sequence-parallel runner ran out of timing events");
  t.marks.emplace_back(layer, t.used);
  cuda_check(cudaEventRecord(t.events[t.used++], model_.stream()), "cudaEventRecord");
}

void DeviceSequenceParallelForward::exposed_end(int) {
  if (!timing_) return;
  cuda_check(cudaEventRecord(timing_->events[timing_->used++], model_.stream()), "cudaEventRecord");
}

DeviceSequenceParallelForward::~DeviceSequenceParallelForward() = default;

std::vector<DevicePiece> DeviceSequenceParallelForward::run(
    const std::function<std::vector<int32_t>(const Segment&)>& ids_of_segment) {
  const ModelConfig& c = model_.config();
  const int64_t D = c.hidden_size;
  const int me = comm_.rank();
  // Buffers, once for the whole forward.
  int64_t longest = 1;
  for (int s : mine_) longest = std::max(longest, layout_.segments[s].len);
  int64_t widest_block = 1;
  for (int r = 0; r < comm_.size(); ++r) widest_block = std::max(widest_block, layout_.tokens_of(r));
  const bool has_mamba = c.count(LayerKind::Mamba) > 0, has_attn = c.count(LayerKind::Attention) > 0;
  const int64_t qd = has_attn ? c.num_heads * c.head_dim : 0, kvd = has_attn ? c.num_kv_heads * c.head_dim : 0;
  const int64_t state_elems = has_mamba ? c.mamba_heads * c.mamba_head_dim * c.ssm_state : 0;
  const int64_t my_rows = layout_.tokens_of(me), I = c.count(LayerKind::Mlp) ? c.intermediate_size : 0;
  scratch_ = std::make_unique<Scratch>();
  Scratch& S = *scratch_;
  auto f = [](int64_t elems, const char* what) { return DeviceBuffer(uint64_t(std::max<int64_t>(elems, 1)) * 4, what); };
  for (int s : mine_) {
    const int64_t n = layout_.segments[s].len;
    S.proj.push_back(f(has_mamba ? n * c.in_proj_dim() : 0, "sequence-parallel Mamba projections"));
    S.conv.push_back(f(has_mamba ? n * c.conv_dim() : 0, "sequence-parallel conv outputs"));
    S.dt.push_back(f(has_mamba ? n * c.mamba_heads : 0, "sequence-parallel time steps"));
    S.y.push_back(f(n * std::max(has_mamba ? c.d_inner() : 0, qd), "sequence-parallel mixer outputs"));
    S.qkv.push_back(f(n * model_.qkv_dim(), "sequence-parallel queries (and keys/values on their way out)"));
  }
  S.normed = f(longest * D, "normed inputs");
  // The MLP runs in row blocks: its [rows, intermediate] activations are the widest.
  const int64_t mlp_rows = std::min(longest, model_.block_tokens());
  S.up = f(mlp_rows * I, "MLP activations");
  S.gate = f(c.mlp == MlpKind::Relu2 ? 0 : mlp_rows * I, "MLP gates");
  const int64_t np = static_cast<int64_t>(mine_.size()), H = has_mamba ? c.mamba_heads : 0;
  const int64_t halo_floats = has_mamba ? (c.conv_kernel - 1) * c.conv_dim() : 0;
  S.history = f(halo_floats * np, "conv halos");
  S.halo_out = f(on_device() ? halo_floats * np : 0, "outgoing conv halos");
  S.state = f(state_elems * np, "segment states");
  S.decay = f(H * np, "segment decays");
  S.incoming = f(state_elems * np, "incoming states");
  if (on_device() && has_mamba) {  // a rank idle in a scan run relays the identity (decay 1, state 0)
    S.ones = f(H, "the state scan's unit decays");
    S.zeros = f(state_elems, "the state scan's zero state");
    S.idle = f(state_elems, "the state scan's idle output");
    to_device(S.ones.as<float>(), std::vector<float>(H, 1.f).data(), H);
    cuda_check(cudaMemset(S.zeros.get(), 0, state_elems * 4), "cudaMemset");
  }
  // The state correction's scratch (kernels/ssd_scan.h), for the longest piece.
  const kernels::SsdShape longest_scan{longest, c.mamba_heads, c.mamba_head_dim, c.n_groups, c.ssm_state,
                                       c.chunk_size};
  S.correction = DeviceBuffer(has_mamba ? kernels::ssd_state_correction_scratch(longest_scan).bytes : 1,
                              "the state correction's scratch");
  S.acc = f(my_rows * qd, "attention accumulators");
  S.m = f(my_rows * (has_attn ? c.num_heads : 0), "attention maxima");
  S.l = f(my_rows * (has_attn ? c.num_heads : 0), "attention sums");
  S.kv_local = f(2 * my_rows * kvd, "this rank's K/V block");
  S.kv_recv = f(2 * widest_block * kvd, "a received K/V block");
  S.kv_recv2 = f(on_device() ? 2 * widest_block * kvd : 0, "a second received K/V block");
  if (on_device() && has_mamba)
    cuda_check(cudaEventCreateWithFlags(&S.states_ready, cudaEventDisableTiming), "cudaEventCreateWithFlags");
  timing_.reset();
  exposed_ms_.assign(c.layers.size(), 0.0);
  if (measure_exposed_) {  // per layer: a halo and a scan per run (Mamba), P ring steps (attention)
    timing_ = std::make_unique<Timing>();
    const size_t per_layer = 2 * (1 + layout_.scan_runs().size() + static_cast<size_t>(comm_.size()));
    timing_->events.resize(per_layer * c.layers.size());
    for (auto& e : timing_->events) cuda_check(cudaEventCreate(&e), "cudaEventCreate");
  }

  if (keep_decode_) keep_begin();
  std::vector<DevicePiece> pieces;
  for (int s : mine_) {
    DevicePiece p;
    p.segment = s;
    p.seg = layout_.segments[s];
    const std::vector<int32_t> ids = ids_of_segment(p.seg);
    if (static_cast<int64_t>(ids.size()) != p.seg.len)
      throw Error("segment " + std::to_string(s) + " should have " + std::to_string(p.seg.len) + " ids, got " +
                  std::to_string(ids.size()));
    p.hidden = f(p.seg.len * D, "a segment's residual stream");
    model_.embed(ids.data(), p.seg.len, p.hidden.as<float>());
    pieces.push_back(std::move(p));
  }
  for (int i = 0; i < static_cast<int>(c.layers.size()); ++i) {
    switch (c.layers[i]) {
      case LayerKind::Mamba: mamba_layer(i, pieces); break;
      case LayerKind::Attention: attention_layer(i, pieces); break;
      case LayerKind::Mlp: mlp_layer(i, pieces); break;
    }
    // Launched, not finished; the state scan and the ring wait on each Mamba and attention layer.
    report_work(static_cast<double>(layout_.length) / static_cast<double>(c.layers.size()));
  }
  for (auto& p : pieces)
    if (p.seg.len) model_.norm(-1, p.d_hidden(), p.seg.len, p.hidden.as<float>());
  if (keep_decode_) keep_last_hidden(pieces);
  cuda_check(cudaDeviceSynchronize(), "the sequence-parallel forward");
  if (timing_)
    for (const auto& [layer, i] : timing_->marks) {
      float ms = 0;
      cuda_check(cudaEventElapsedTime(&ms, timing_->events[i], timing_->events[i + 1]), "cudaEventElapsedTime");
      exposed_ms_[layer] += ms;
    }
  return pieces;
}

void DeviceSequenceParallelForward::mlp_layer(int layer, std::vector<DevicePiece>& pieces) {
  Scratch& S = *scratch_;
  const int64_t D = model_.config().hidden_size;
  for (auto& p : pieces) {
    const int64_t n = p.seg.len;
    if (n == 0) continue;
    model_.norm(layer, p.d_hidden(), n, S.normed.as<float>());
    for (int64_t r0 = 0; r0 < n; r0 += model_.block_tokens()) {
      const int64_t nr = std::min(model_.block_tokens(), n - r0);
      model_.mlp(layer, model_.act_row(S.normed.get(), r0, D), nr, S.up.as<float>(), S.gate.as<float>(),
                 p.hidden.as<float>() + r0 * D, /*accumulate=*/true);
    }
  }
}

void DeviceSequenceParallelForward::mamba_layer(int layer, std::vector<DevicePiece>& pieces) {
  const ModelConfig& c = model_.config();
  Scratch& S = *scratch_;
  const int64_t H = c.mamba_heads, di = c.d_inner(), cd = c.conv_dim(), P = c.in_proj_dim();
  const int64_t K1 = c.conv_kernel - 1;
  const size_t state_elems = static_cast<size_t>(c.mamba_head_dim * c.ssm_state);
  const size_t np = pieces.size();
  const cudaStream_t stream = model_.stream();
  auto buffers = [&](size_t i) {
    return DeviceModel::MambaBuffers{S.proj[i].as<float>(), S.conv[i].as<float>(), S.dt[i].as<float>(),
                                     S.y[i].as<float>()};
  };
  float* history = S.history.as<float>();
  float* local = S.state.as<float>();
  float* decay = S.decay.as<float>();
  float* incoming = S.incoming.as<float>();
  auto tail_of = [&](size_t i) {  // the last min(len, K-1) pre-conv (xBC) rows of piece i, P floats apart
    const int64_t n = pieces[i].seg.len;
    return S.proj[i].as<float>() + (n - std::min(n, K1)) * P + di;
  };
  for (size_t i = 0; i < np; ++i) {
    const int64_t n = pieces[i].seg.len;
    if (n == 0) continue;
    model_.norm(layer, pieces[i].d_hidden(), n, S.normed.as<float>());
    model_.mamba_in_proj(layer, S.normed.as<float>(), n, buffers(i));
  }

  // 1. Conv halos.
  const std::string halo_label = traffic_label(layer, "halo");
  exposed_begin(layer);
  if (on_device()) {
    HaloBuffers hb;
    hb.tail_pitch = P;
    for (size_t i = 0; i < np; ++i) {
      hb.tail.push_back(pieces[i].seg.len ? tail_of(i) : nullptr);
      hb.halo.push_back(history + i * K1 * cd);
      hb.outgoing.push_back(S.halo_out.as<float>() + i * K1 * cd);
    }
    SpaceOps ops;
    ops.copy_rows = [&](float* dst, const float* src, int64_t pitch, int64_t rows, int64_t channels) {
      cuda_check(cudaMemcpy2DAsync(dst, channels * 4, src, pitch * 4, channels * 4, rows, cudaMemcpyDeviceToDevice, stream),
            "halo copy");
    };
    ops.zero = [&](float* dst, int64_t n) { cuda_check(cudaMemsetAsync(dst, 0, n * 4, stream), "halo zero"); };
    exchange_conv_halo(comm_, layout_, mine_, hb, cd, K1, halo_label, ops);
  } else {
    std::vector<std::vector<float>> tails(np);
    for (size_t i = 0; i < np; ++i) {
      const int64_t m = std::min(pieces[i].seg.len, K1);
      tails[i].resize(m * cd);
      if (m > 0)
        cuda_check(cudaMemcpy2D(tails[i].data(), cd * 4, tail_of(i), P * 4, cd * 4, m, cudaMemcpyDeviceToHost),
              "conv tail download");
    }
    const auto halo = exchange_conv_halo(comm_, layout_, mine_, tails, cd, K1, halo_label);
    for (size_t i = 0; i < np; ++i)
      if (K1 > 0) to_device(history + i * K1 * cd, halo[i].data(), halo[i].size());
  }
  exposed_end(layer);
  const int last_segment = static_cast<int>(layout_.segments.size()) - 1;
  if (keep_decode_)  // the driver: the conv history after the sequence
    for (size_t i = 0; i < np; ++i)
      if (pieces[i].segment == last_segment)
        keep_conv_history(layer, history + i * K1 * cd, tail_of(i), std::min(pieces[i].seg.len, K1), P);

  // 2. Local scans from a zero state, and each segment's total decay, on the
  // device. The decays (from dt alone) come before any SSD, so that on a device
  // communicator the state scan can start as soon as the last segment's final
  // state is complete (states_ready, recorded inside its SSD) and overlap that
  // SSD's output stages, most of its work.
  size_t last_scanned = np;
  for (size_t i = 0; i < np; ++i) {
    const int64_t n = pieces[i].seg.len;
    if (n == 0) {  // an empty segment passes the state through: decay 1, state 0
      if (on_device()) {
        cuda_check(cudaMemcpyAsync(decay + i * H, S.ones.get(), H * 4, cudaMemcpyDeviceToDevice, stream), "decay fill");
        cuda_check(cudaMemsetAsync(local + i * H * state_elems, 0, H * state_elems * 4, stream), "state fill");
      }
      continue;
    }
    model_.mamba_conv_dt(layer, n, K1 > 0 ? history + i * K1 * cd : nullptr, buffers(i));
    model_.mamba_segment_decay(layer, n, buffers(i), decay + i * H);
    last_scanned = i;
  }
  for (size_t i = 0; i < np; ++i) {
    if (pieces[i].seg.len == 0) continue;
    void* ready = on_device() && i == last_scanned ? S.states_ready : nullptr;
    model_.mamba_ssd(layer, pieces[i].seg.len, nullptr, buffers(i), local + i * H * state_elems, nullptr, ready);
  }
  // A rank with no tokens in this layer's segments: its inputs are the fills above.
  if (on_device() && last_scanned == np) cuda_check(cudaEventRecord(S.states_ready, stream), "cudaEventRecord");

  // 3. The state scan: on the device over NCCL, staged through the host over MPI.
  const std::string state_label = traffic_label(layer, "state");
  exposed_begin(layer);
  if (on_device()) {
    SegmentStateBuffers sb;
    for (size_t i = 0; i < np; ++i) {
      sb.decay.push_back(decay + i * H);
      sb.state.push_back(local + i * H * state_elems);
      sb.incoming.push_back(incoming + i * H * state_elems);
      sb.after.push_back(local + i * H * state_elems);  // the local state is not needed after the scan
    }
    sb.ones = S.ones.as<float>();
    sb.zeros = S.zeros.as<float>();
    sb.idle_out = S.idle.as<float>();
    sb.inputs_ready = S.states_ready;
    scan_segment_states(comm_, layout_, mine_, sb, H, state_elems, state_label);
    if (keep_decode_)
      for (size_t i = 0; i < np; ++i)
        if (pieces[i].segment == last_segment) keep_ssm_state(layer, local + i * H * state_elems, /*on_host=*/false);
  } else {
    std::vector<std::vector<float>> local_h(np, std::vector<float>(H * state_elems, 0.f)), decay_h(np, std::vector<float>(H, 1.f));
    for (size_t i = 0; i < np; ++i) {
      if (pieces[i].seg.len == 0) continue;
      to_host(local_h[i].data(), local + i * H * state_elems, local_h[i].size());
      to_host(decay_h[i].data(), decay + i * H, H);
    }
    const SegmentStates states =
        scan_segment_states(comm_, layout_, mine_, decay_h, local_h, H, state_elems, state_label);
    for (size_t i = 0; i < np; ++i)
      if (pieces[i].seg.len) to_device(incoming + i * H * state_elems, states.incoming[i].data(), states.incoming[i].size());
    if (keep_decode_ && !states.final_state.empty()) keep_ssm_state(layer, states.final_state.data(), /*on_host=*/true);
  }
  exposed_end(layer);

  // 4. Each segment's outputs corrected for its incoming state.
  for (size_t i = 0; i < np; ++i) {
    const int64_t n = pieces[i].seg.len;
    if (n == 0) continue;
    model_.mamba_state_correction(layer, n, incoming + i * H * state_elems, buffers(i),
                                  kernels::Workspace{S.correction.get(), S.correction.bytes()});
    model_.mamba_out(layer, n, buffers(i), pieces[i].hidden.as<float>(), /*accumulate=*/true);
  }
}

void DeviceSequenceParallelForward::attention_layer(int layer, std::vector<DevicePiece>& pieces) {
  const ModelConfig& c = model_.config();
  Scratch& S = *scratch_;
  const int64_t qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim, Hq = c.num_heads;
  const int me = comm_.rank();
  const size_t np = pieces.size();
  const int64_t my_rows = layout_.tokens_of(me);

  // q | k | v per piece (one GEMM); k and v then copied into this rank's block [k rows ; v rows].
  float* block = S.kv_local.as<float>();
  const int64_t W = model_.qkv_dim();
  std::vector<int64_t> row0(np);
  int64_t r = 0;
  for (size_t i = 0; i < np; ++i) {
    row0[i] = r;
    const int64_t n = pieces[i].seg.len;
    if (n) {
      model_.norm(layer, pieces[i].d_hidden(), n, S.normed.as<float>());
      float* qkv = S.qkv[i].as<float>();
      model_.attention_qkv(layer, S.normed.as<float>(), n, pieces[i].seg.begin, qkv);
      const size_t row = kvd * sizeof(float), pitch = W * sizeof(float);
      cuda_check(cudaMemcpy2DAsync(block + r * kvd, row, qkv + qd, pitch, row, n, cudaMemcpyDeviceToDevice, model_.stream()), "K copy");
      cuda_check(cudaMemcpy2DAsync(block + (my_rows + r) * kvd, row, qkv + qd + kvd, pitch, row, n,
                              cudaMemcpyDeviceToDevice, model_.stream()),
            "V copy");
    }
    r += n;
  }
  if (keep_decode_) keep_kv(layer, block, my_rows);
  const kernels::AttentionShape shape{c.num_heads, c.num_kv_heads, c.head_dim};
  float *acc = S.acc.as<float>(), *m = S.m.as<float>(), *l = S.l.as<float>();
  kernels::cuda::attention_init(shape, my_rows, acc, m, l, model_.stream());
  // Every (query piece, visible key segment) pair of src's block, on the device.
  auto fold = [&](int src, const float* kv) {
    const int64_t src_rows = layout_.tokens_of(src);
    for_each_visible_pair(layout_, src, mine_, [&](size_t i, const Segment& kseg, int64_t kr) {
      const Segment& q = pieces[i].seg;
      model_.attention_fold(S.qkv[i].as<float>(), W, q.len, q.begin, kv + kr * kvd, kv + (src_rows + kr) * kvd, kvd,
                            kseg.len, kseg.begin, acc + row0[i] * qd, m + row0[i] * Hq, l + row0[i] * Hq);
    });
  };
  const std::string label = traffic_label(layer, "ring");
  if (on_device()) {
    // Device buffers end to end. The communicator's stream waits for the
    // kernels queued so far before each transfer (so a buffer is overwritten
    // only after the folds that read it); the compute stream waits for the
    // transfer on its event, not the host.
    ring_pass(comm_, layout_, block, S.kv_recv.as<float>(), S.kv_recv2.as<float>(), kvd, label, fold,
              [&](comm::Request& inflight) {
                exposed_begin(layer);
                inflight.wait_on_stream(model_.stream());
                exposed_end(layer);
              });
  } else {
    std::vector<float> host_block(2 * my_rows * kvd);
    to_host(host_block.data(), block, host_block.size());
    ring_pass(comm_, layout_, host_block, kvd, label, [&](int src, const float* cur) {
      if (src == me) return fold(src, block);  // our own block is already on the device
      // A pageable upload waits for the kernels still reading kv_recv from the previous step.
      to_device(S.kv_recv.as<float>(), cur, 2 * layout_.tokens_of(src) * kvd);
      fold(src, S.kv_recv.as<float>());
    });
  }

  for (size_t i = 0; i < np; ++i) {
    const int64_t n = pieces[i].seg.len;
    if (n == 0) continue;
    model_.attention_output(n, acc + row0[i] * qd, l + row0[i] * Hq, S.y[i].get());
    model_.attention_out(layer, n, S.y[i].get(), pieces[i].hidden.as<float>(), /*accumulate=*/true);
  }
}

}  // namespace ringscan
