#include "runtime/sequence_parallel.h"

#include <algorithm>

#include <cmath>
#include <cstring>

#include "kernels/rmsnorm.h"
#include "kernels/ssd_scan.h"
#include "runtime/segment_exchange.h"
#include "runtime/work_progress.h"
#include "util/error.h"

namespace ringscan {

namespace k = kernels::cpu;

std::vector<float> SequenceParallelForward::normed_input(int layer, const Piece& p) const {
  const int64_t D = model_.config().hidden_size;
  std::vector<float> out(p.seg.len * D);
  k::rmsnorm(p.hidden.data(), p.seg.len, D, model_.weights().layers[layer].norm, model_.config().norm_eps, out.data());
  return out;
}

SequenceParallelForward::SequenceParallelForward(Model& model, comm::Communicator& comm, SequenceLayout layout)
    : model_(model), comm_(comm), layout_(std::move(layout)) {
  if (layout_.ranks != comm.size())
    throw Error("sequence layout for " + std::to_string(layout_.ranks) + " ranks used on a communicator of " +
                std::to_string(comm.size()));
}

std::vector<Piece> SequenceParallelForward::run(
    const std::function<std::vector<int32_t>(const Segment&)>& ids_of_segment, const PieceObserver& observer) {
  const ModelConfig& c = model_.config();
  const int64_t D = c.hidden_size;
  std::vector<Piece> pieces;
  for (int s : layout_.segments_of(comm_.rank())) {
    Piece p;
    p.segment = s;
    p.seg = layout_.segments[s];
    p.ids = ids_of_segment(p.seg);
    if (static_cast<int64_t>(p.ids.size()) != p.seg.len)
      throw Error("segment " + std::to_string(s) + " should have " + std::to_string(p.seg.len) + " ids, got " +
                  std::to_string(p.ids.size()));
    p.hidden.resize(p.seg.len * D);
    model_.embed(p.ids.data(), p.seg.len, p.hidden.data());
    pieces.push_back(std::move(p));
  }
  ws_.resize(pieces.size());
  if (keep_decode_) {
    decode_ = SequenceParallelDecodeState{};
    decode_.driver = layout_.segments.back().owner;
    decode_.length = layout_.length;
    decode_.state = model_.new_state();
    decode_.state.position = layout_.length;
  }
  for (size_t i = 0; i < c.layers.size(); ++i) {
    switch (c.layers[i]) {
      case LayerKind::Mamba: mamba_layer(static_cast<int>(i), pieces); break;
      case LayerKind::Attention: attention_layer(static_cast<int>(i), pieces); break;
      case LayerKind::Mlp: mlp_layer(static_cast<int>(i), pieces); break;
    }
    if (observer)
      for (const auto& p : pieces) observer(static_cast<int>(i), p);
    report_work(static_cast<double>(layout_.length) / static_cast<double>(c.layers.size()));
  }
  for (auto& p : pieces) k::rmsnorm(p.hidden.data(), p.seg.len, D, model_.weights().norm_f, c.norm_eps, p.hidden.data());
  if (keep_decode_) hand_last_hidden_to_driver(pieces);
  return pieces;
}

// The last position's hidden row goes to the driver, which draws the first new
// token from it (they differ when the last segments are empty, L < 2P).
void SequenceParallelForward::hand_last_hidden_to_driver(const std::vector<Piece>& pieces) {
  const int64_t D = model_.config().hidden_size, L = layout_.length;
  if (L == 0) return;
  const int holder = layout_.last_position_owner();
  const int me = comm_.rank(), driver = decode_.driver;
  if (me != holder && me != driver) return;
  std::vector<float> row(D);
  if (me == holder)
    for (const auto& p : pieces)
      if (p.seg.len > 0 && p.seg.end() == L) std::copy(p.hidden.end() - D, p.hidden.end(), row.begin());
  if (holder != driver) {
    auto _ = comm_.counter_scope("decode.handoff");
    if (me == holder) comm_.send(row.data(), row.size(), driver);
    else comm_.recv(row.data(), row.size(), holder);
  }
  if (me == driver) decode_.last_hidden = std::move(row);
}

SequenceParallelDecodeState SequenceParallelForward::take_decode_state() {
  if (!keep_decode_) throw Error("take_decode_state: call set_keep_decode_state(true) before run()");
  return std::move(decode_);
}

// exp(A[h] * sum_t dt[t, h]) per head: a segment's total decay (kernels/ssd_scan.h).
std::vector<float> segment_decay(const float* dt, int64_t n, const std::vector<float>& A) {
  const int64_t H = static_cast<int64_t>(A.size());
  std::vector<float> out(H);
  kernels::cpu::ssd_segment_decay(kernels::SsdShape{n, H, 1, 1, 1, 0}, dt, A.data(), out.data());
  return out;
}

namespace {

void add_into(std::vector<float>& h, const std::vector<float>& x) {
  for (size_t i = 0; i < h.size(); ++i) h[i] += x[i];
}
}  // namespace

void SequenceParallelForward::mlp_layer(int layer, std::vector<Piece>& pieces) {
  const ModelConfig& c = model_.config();
  for (size_t i = 0; i < pieces.size(); ++i) {
    auto& p = pieces[i];
    if (p.seg.len == 0) continue;
    std::vector<float> x = normed_input(layer, p), out(x.size());
    mlp_mixer(c, model_.weights().layers[layer].mlp, x.data(), p.seg.len, ws_[i], out.data());
    add_into(p.hidden, out);
  }
}

// Mamba-2 over segments (DESIGN.md §4): conv halo, local scan from zero,
// exclusive scan of segment states, correction by the incoming state.
void SequenceParallelForward::mamba_layer(int layer, std::vector<Piece>& pieces) {
  const ModelConfig& c = model_.config();
  const MambaWeights& w = model_.weights().layers[layer].mamba;
  const int64_t H = c.mamba_heads, di = c.d_inner(), cd = c.conv_dim(), GN = c.n_groups * c.ssm_state;
  const size_t state_elems = static_cast<size_t>(c.mamba_head_dim * c.ssm_state);
  const size_t np = pieces.size();

  std::vector<const float*> proj(np);
  for (size_t i = 0; i < np; ++i) {
    std::vector<float> x = normed_input(layer, pieces[i]);
    proj[i] = pieces[i].seg.len ? mamba_in_proj(c, w, x.data(), pieces[i].seg.len, ws_[i]) : nullptr;
  }
  std::vector<int> mine;
  for (const auto& p : pieces) mine.push_back(p.segment);
  // Each piece's last min(len, K-1) pre-conv rows, for the next segment's conv.
  const int64_t K1 = c.conv_kernel - 1, P_in = c.in_proj_dim();
  std::vector<std::vector<float>> tails(np);
  for (size_t i = 0; i < np; ++i) {
    const int64_t n = pieces[i].seg.len, m = std::min(n, K1);
    tails[i].resize(m * cd);
    for (int64_t r = 0; r < m; ++r)
      std::memcpy(tails[i].data() + r * cd, proj[i] + (n - m + r) * P_in + di, cd * sizeof(float));
  }
  auto halo = exchange_conv_halo(comm_, layout_, mine, tails, cd, K1, traffic_label(layer, "halo"));
  const int last_segment = static_cast<int>(layout_.segments.size()) - 1;
  if (keep_decode_)  // the driver: last K-1 rows of [halo of the last segment ; its rows]
    for (size_t i = 0; i < np; ++i)
      if (pieces[i].segment == last_segment) {
        std::vector<float>& hist = decode_.state.layers[layer].conv_history;
        hist = halo[i];
        mamba_next_history(c, proj[i], pieces[i].seg.len, hist);
      }

  std::vector<float> A(H);
  for (int64_t h = 0; h < H; ++h) A[h] = -std::exp(w.A_log.at(h));
  // Local scans from a zero state: outputs y^0, final state S, total decay a.
  std::vector<std::vector<float>> S(np, std::vector<float>(H * state_elems, 0.f)), decay(np, std::vector<float>(H, 1.f));
  for (size_t i = 0; i < np; ++i) {
    const int64_t n = pieces[i].seg.len;
    if (n == 0) continue;
    mamba_scan(c, w, proj[i], n, halo[i].data(), nullptr, ws_[i], S[i].data());
    decay[i] = segment_decay(ws_[i].dt.data(), n, A);
  }
  SegmentStates states = scan_segment_states(comm_, layout_, mine, decay, S, H, state_elems, traffic_label(layer, "state"));
  const auto& incoming = states.incoming;
  if (keep_decode_ && !states.final_state.empty()) decode_.state.layers[layer].ssm_state = states.final_state;

  for (size_t i = 0; i < np; ++i) {
    auto& p = pieces[i];
    const int64_t n = p.seg.len;
    if (n == 0) continue;
    kernels::SsdShape s{n, H, c.mamba_head_dim, c.n_groups, c.ssm_state, c.chunk_size};
    const float* C = ws_[i].conv.data() + di + GN;
    k::ssd_state_correction(s, ws_[i].dt.data(), A.data(), C, cd, incoming[i].data(), ws_[i].y.data(), di, nullptr);
    std::vector<float> out(n * c.hidden_size);
    mamba_out(c, w, proj[i], n, ws_[i], out.data());
    add_into(p.hidden, out);
  }
}

}  // namespace ringscan
