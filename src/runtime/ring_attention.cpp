// Ring attention (DESIGN.md §4): every rank keeps the queries of its pieces
// and passes its K/V block around the ring; in P-1 steps each rank sees every
// block, computing on the one it holds while the next is in flight. Partial
// results merge through the online softmax (running max, sum, accumulator in
// fp32). Blocks entirely in the future of a query piece are skipped, which is
// what makes the zigzag layout balanced.
#include <cmath>

#include "kernels/attention.h"
#include "kernels/elementwise.h"
#include "runtime/segment_exchange.h"
#include "runtime/sequence_parallel.h"

namespace ringscan {

namespace k = kernels::cpu;

void SequenceParallelForward::attention_layer(int layer, std::vector<Piece>& pieces) {
  const ModelConfig& c = model_.config();
  const AttentionWeights& w = model_.weights().layers[layer].attn;
  const int64_t qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim, Hq = c.num_heads;
  const int me = comm_.rank();
  const size_t np = pieces.size();

  // Local q, k, v per piece (RoPE at the piece's own positions); this rank's
  // K/V block packs [k rows of every piece ; v rows of every piece].
  const int64_t my_rows = layout_.tokens_of(me);
  std::vector<float> block(2 * my_rows * kvd);
  std::vector<int64_t> row0(np);  // first row of piece i within this rank's rows
  int64_t r = 0;
  for (size_t i = 0; i < np; ++i) {
    row0[i] = r;
    const int64_t n = pieces[i].seg.len;
    if (n) {
      std::vector<float> x = normed_input(layer, pieces[i]);
      attention_qkv(c, w, x.data(), n, pieces[i].seg.begin, ws_[i]);
      std::copy(ws_[i].k.begin(), ws_[i].k.begin() + n * kvd, block.begin() + r * kvd);
      std::copy(ws_[i].v.begin(), ws_[i].v.begin() + n * kvd, block.begin() + (my_rows + r) * kvd);
    }
    r += n;
  }

  if (keep_decode_) {  // this rank's shard of the KV cache for decoding
    LayerCache& kv = decode_.state.layers[layer];
    kv.k.assign(block.begin(), block.begin() + my_rows * kvd);
    kv.v.assign(block.begin() + my_rows * kvd, block.end());
    kv.kv_rows = my_rows;
  }

  kernels::AttentionShape shape{c.num_heads, c.num_kv_heads, c.head_dim};
  std::vector<float> acc(my_rows * qd), m(my_rows * Hq), l(my_rows * Hq);
  k::attention_init(shape, my_rows, acc.data(), m.data(), l.data());
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));

  std::vector<int> mine;
  for (const auto& p : pieces) mine.push_back(p.segment);
  ring_pass(comm_, layout_, block, kvd, traffic_label(layer, "ring"), [&](int src, const float* cur) {
    const int64_t src_rows = layout_.tokens_of(src);
    for_each_visible_pair(layout_, src, mine, [&](size_t i, const Segment& kseg, int64_t kr) {
      const Segment& q = pieces[i].seg;
      k::attention_block(shape, ws_[i].q.data(), qd, q.len, q.begin, cur + kr * kvd, kvd, cur + (src_rows + kr) * kvd,
                         kvd, kseg.len, kseg.begin, scale, /*causal=*/true, acc.data() + row0[i] * qd,
                         m.data() + row0[i] * Hq, l.data() + row0[i] * Hq);
    });
  });

  for (size_t i = 0; i < np; ++i) {
    const int64_t n = pieces[i].seg.len;
    if (n == 0) continue;
    float* y = Workspace::sized(ws_[i].y, n * qd);
    k::attention_finalize(shape, n, acc.data() + row0[i] * qd, l.data() + row0[i] * Hq, y, qd);
    std::vector<float> out(n * c.hidden_size);
    attention_out(c, w, n, ws_[i], out.data());
    kernels::cpu::add_inplace(out.data(), static_cast<int64_t>(out.size()), pieces[i].hidden.data());
  }
}

}  // namespace ringscan
