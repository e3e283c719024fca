// Each sequence's query over its widened cache: attention_init, then
// attention_block over every key (all visible: no causal mask needed).
#include <algorithm>
#include <vector>

#include "attention_decode.h"

namespace ringscan::kernels {

int attention_decode_splits(const AttentionShape& s, int64_t batch) {
  constexpr int64_t kTargetBlocks = 2 * 132, kMaxSplits = 16;  // two waves of an H200's SMs
  const int64_t blocks = std::max<int64_t>(1, batch * s.kv_heads);
  return static_cast<int>(std::clamp<int64_t>((kTargetBlocks + blocks - 1) / blocks, 1, kMaxSplits));
}

size_t attention_decode_workspace(const AttentionShape& s, int64_t batch) {
  const int splits = attention_decode_splits(s, batch);
  return splits > 1 ? static_cast<size_t>(splits * batch * s.q_heads * (s.head_dim + 2)) * 4 : 0;
}

namespace cpu {

void attention_decode(const AttentionShape& s, const float* q, int64_t ld_q, int64_t batch, const void* const* k_cache,
                      const void* const* v_cache, DType kv_dtype, const int32_t* len, float scale, float* acc,
                      float* m, float* l) {
  const int64_t kvd = s.kv_heads * s.head_dim, qd = s.q_heads * s.head_dim;
  #pragma omp parallel for schedule(dynamic, 1)
  for (int64_t b = 0; b < batch; ++b) {
    float *a = acc + b * qd, *mb = m + b * s.q_heads, *lb = l + b * s.q_heads;
    attention_init(s, 1, a, mb, lb);
    const int64_t n = k_cache[b] ? len[b] : 0;
    if (n <= 0) continue;
    const float *k = static_cast<const float*>(k_cache[b]), *v = static_cast<const float*>(v_cache[b]);
    std::vector<float> kw, vw;
    if (kv_dtype != DType::F32) {
      kw.resize(n * kvd), vw.resize(n * kvd);
      WeightView{kv_dtype, k_cache[b], n, kvd}.to_f32(0, n * kvd, kw.data());
      WeightView{kv_dtype, v_cache[b], n, kvd}.to_f32(0, n * kvd, vw.data());
      k = kw.data(), v = vw.data();
    }
    attention_block(s, q + b * ld_q, ld_q, 1, n - 1, k, kvd, v, kvd, n, 0, scale, /*causal=*/false, a, mb, lb);
  }
}

}  // namespace cpu
}  // namespace ringscan::kernels
