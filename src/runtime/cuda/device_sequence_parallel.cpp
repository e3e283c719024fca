// The GPU sequence-parallel runner; the CPU runner (sequence_parallel.cpp,
// ring_attention.cpp) is its twin and explains each step.
#include "runtime/device_sequence_parallel.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "kernels/attention.h"
#include "kernels/ssd_scan.h"
#include "model/device_model.h"
#include "runtime/segment_exchange.h"
#include "runtime/sequence_parallel.h"
#include "runtime/work_progress.h"
#include "util/error.h"

namespace ringscan {

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(std::string("CUDA: ") + what + " failed: " + cudaGetErrorString(e));
}
void to_host(float* h, const float* d, size_t n) { check(cudaMemcpy(h, d, n * 4, cudaMemcpyDeviceToHost), "download"); }
void to_device(float* d, const float* h, size_t n) { check(cudaMemcpy(d, h, n * 4, cudaMemcpyHostToDevice), "upload"); }

}  // namespace

// Per piece: the Mamba phase buffers (kept across the state exchange) and the
// queries (kept across the ring); shared: the rest, sized for the longest piece.
struct DeviceSequenceParallelForward::Scratch {
  std::vector<DeviceBuffer> proj, conv, dt, y, qkv;
  DeviceBuffer normed, up, gate, history, state, incoming, correction, acc, m, l, kv_local, kv_recv, kv_recv2;
};

DeviceSequenceParallelForward::DeviceSequenceParallelForward(DeviceModel& model, comm::Communicator& comm,
                                                             SequenceLayout layout, comm::Communicator* ring_comm)
    : model_(model), comm_(comm), ring_comm_(ring_comm), layout_(std::move(layout)) {
  if (layout_.ranks != comm.size())
    throw Error("sequence layout for " + std::to_string(layout_.ranks) + " ranks used on a communicator of " +
                std::to_string(comm.size()));
  if (comm.memory_space() != comm::MemorySpace::host)
    throw Error("the GPU sequence-parallel runner stages its exchanges through host memory and needs an MPI "
                "communicator (--comm mpi), not " + comm.backend_name());
  if (ring_comm_ && (ring_comm_->memory_space() != comm::MemorySpace::cuda || ring_comm_->size() != comm.size() ||
                     ring_comm_->rank() != comm.rank()))
    throw Error("the K/V ring communicator must be a device-memory (NCCL) communicator over the same ranks");
  mine_ = layout_.segments_of(comm.rank());
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
  S.history = f(has_mamba ? (c.conv_kernel - 1) * c.conv_dim() : 0, "a conv halo");
  S.state = f(state_elems * static_cast<int64_t>(mine_.size()), "segment states");
  S.incoming = f(state_elems, "an incoming state");
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
  S.kv_recv2 = f(ring_comm_ ? 2 * widest_block * kvd : 0, "a second received K/V block");

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
  check(cudaDeviceSynchronize(), "the sequence-parallel forward");
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
  auto buffers = [&](size_t i) {
    return DeviceModel::MambaBuffers{S.proj[i].as<float>(), S.conv[i].as<float>(), S.dt[i].as<float>(),
                                     S.y[i].as<float>()};
  };
  // in_proj, and each piece's last min(len, K-1) pre-conv rows to the host for the halo exchange.
  std::vector<std::vector<float>> tails(np);
  for (size_t i = 0; i < np; ++i) {
    const int64_t n = pieces[i].seg.len, m = std::min(n, K1);
    if (n == 0) continue;
    model_.norm(layer, pieces[i].d_hidden(), n, S.normed.as<float>());
    model_.mamba_in_proj(layer, S.normed.as<float>(), n, buffers(i));
    tails[i].resize(m * cd);
    if (m > 0)
      check(cudaMemcpy2D(tails[i].data(), cd * 4, S.proj[i].as<float>() + (n - m) * P + di, P * 4, cd * 4, m,
                         cudaMemcpyDeviceToHost),
            "conv tail download");
  }
  const auto halo = exchange_conv_halo(comm_, layout_, mine_, tails, cd, K1, traffic_label(layer, "halo"));

  // Local scans from a zero state; states and total decays to the host.
  const std::vector<float>& A = model_.mamba_A(layer);
  std::vector<std::vector<float>> local(np, std::vector<float>(H * state_elems, 0.f)), decay(np, std::vector<float>(H, 1.f));
  std::vector<float> dt_host;
  for (size_t i = 0; i < np; ++i) {
    const int64_t n = pieces[i].seg.len;
    if (n == 0) continue;
    if (K1 > 0) to_device(S.history.as<float>(), halo[i].data(), halo[i].size());
    float* d_final = S.state.as<float>() + i * H * state_elems;
    model_.mamba_scan(layer, n, K1 > 0 ? S.history.as<float>() : nullptr, nullptr, buffers(i), d_final);
    to_host(local[i].data(), d_final, local[i].size());
    dt_host.resize(n * H);
    to_host(dt_host.data(), S.dt[i].as<float>(), dt_host.size());
    decay[i] = segment_decay(dt_host.data(), n, A);
  }
  const SegmentStates states =
      scan_segment_states(comm_, layout_, mine_, decay, local, H, state_elems, traffic_label(layer, "state"));

  for (size_t i = 0; i < np; ++i) {
    const int64_t n = pieces[i].seg.len;
    if (n == 0) continue;
    to_device(S.incoming.as<float>(), states.incoming[i].data(), states.incoming[i].size());
    model_.mamba_state_correction(layer, n, S.incoming.as<float>(), buffers(i),
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
      check(cudaMemcpy2DAsync(block + r * kvd, row, qkv + qd, pitch, row, n, cudaMemcpyDeviceToDevice, model_.stream()), "K copy");
      check(cudaMemcpy2DAsync(block + (my_rows + r) * kvd, row, qkv + qd + kvd, pitch, row, n,
                              cudaMemcpyDeviceToDevice, model_.stream()),
            "V copy");
    }
    r += n;
  }
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
  if (ring_comm_) {
    // NCCL: device buffers end to end. Its stream waits for the kernels queued
    // so far before each transfer, so a buffer is overwritten only after the
    // folds that read it.
    ring_pass(*ring_comm_, layout_, block, S.kv_recv.as<float>(), S.kv_recv2.as<float>(), kvd, label, fold);
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
