// Block-wise attention (attention_block: one block of keys folded into an
// online-softmax state; attention_varlen: packed sequences, each attending to
// itself), on every backend: the fp32 kernels (cpu, cuda; on cpu also each of
// its two implementations forced: portable and AVX-512) and
// the tensor-core one (cuda::attention_block_mma, fp32 or bf16 inputs, 4 or
// 8 warps per CTA, with or without split-K workspace). One case list for all:
// test::attention_block_cases().
#include <cmath>
#include <numeric>
#include <sstream>

#include "backend_ops/op_case.h"
#include "kernels/attention.h"
#include "kernels/attention_test_util.h"

namespace ringscan::test::ops {
namespace {

enum class Kernel { Fp32, CpuPortable, CpuAvx512, MmaF32In, MmaBf16In, MmaBf16In8Warps, MmaNoWorkspace };
bool is_mma(Kernel k) { return k != Kernel::Fp32 && k != Kernel::CpuPortable && k != Kernel::CpuAvx512; }
bool fp32_inputs(Kernel k) { return !is_mma(k) || k == Kernel::MmaF32In; }
const char* kernel_name(Kernel k) {
  switch (k) {
    case Kernel::Fp32: return "fp32";
    case Kernel::CpuPortable: return "fp32, portable cpu kernel";
    case Kernel::CpuAvx512: return "fp32, AVX-512 cpu kernel";
    case Kernel::MmaF32In: return "mma, f32 in";
    case Kernel::MmaBf16In: return "mma, bf16 in";
    case Kernel::MmaBf16In8Warps: return "mma, bf16 in, 8 warps";
    case Kernel::MmaNoWorkspace: return "mma, bf16 in, no split workspace";
  }
  return "?";
}
// Fp32 runs what the backend picks (on cpu: the AVX-512 kernel where the CPU
// has it, for tasks of >= 16 packed rows); CpuPortable and CpuAvx512 force one
// of the two cpu kernels for every shape (kernels/attention.h,
// CpuAttentionPath). A CPU without AVX-512F cannot run the latter: not applicable there.
bool kernel_runs_on(Kernel k, const Backend& b) {
  if (k == Kernel::CpuPortable) return !b.is_cuda();
  if (k == Kernel::CpuAvx512) return !b.is_cuda() && kernels::cpu::attention_avx512_available();
  return !is_mma(k) || b.is_cuda();
}
// The cpu kernel a case runs (Auto: the backend's choice).
kernels::cpu::CpuAttentionPath cpu_path(Kernel k) {
  if (k == Kernel::CpuPortable) return kernels::cpu::CpuAttentionPath::Portable;
  if (k == Kernel::CpuAvx512) return kernels::cpu::CpuAttentionPath::Avx512;
  return kernels::cpu::CpuAttentionPath::Auto;
}
constexpr Kernel kCpuKernels[] = {Kernel::CpuPortable, Kernel::CpuAvx512};

// Tolerances (AttentionTolerances: outputs absolute, the running max absolute,
// l relative at the same max).
//  - fp32, cpu: scores are dot products of head_dim fp32 products of inputs in
//    [-2, 2] scaled by 1/sqrt(head_dim): rounding ~sqrt(128) 2^-24 |q k| scale
//    ~ 1e-6 (worst ~10x); a weight exp(s - m) inherits it as a relative error
//    (plus ~2 ulp of the vectorised exp); outputs are weighted means of values
//    in [-1, 1]: 1e-5. Both cpu kernels: the AVX-512 one scales the queries
//    before the products (one more rounding, 2^-24 of a score) and sums each
//    score over the head dim in order; the portable one as OpenBLAS does.
//  - fp32, cuda: the same as FMA chains over head_dim <= 256 and fp32 sums over
//    key tiles and split partials: 2e-5.
//  - mma: the reference runs on the bf16-rounded inputs, so the score products
//    are the same; scores are fp32 sums in the tensor core's order (1e-4 for
//    the max), l sums fp32 weights (2e-4), and the weights P are rounded to
//    bf16 before P V (<= 2^-8 each) while l sums the unrounded ones: an output
//    moves by at most 2^-8 max|v| = 3.9e-3; 4e-3, and the mean error (random
//    signs) within 5e-4.
// A key attended that should be masked, one key too few in a block of <= 40,
// a wrong GQA head or fragment index moves outputs by 1e-2 to 1e-1.
AttentionTolerances tolerances(Kernel k, const Backend& b) {
  if (is_mma(k)) return {4e-3, 1e-4, 2e-4};
  return b.is_cuda() ? AttentionTolerances{2e-5, 2e-5, 2e-5} : AttentionTolerances{1e-5, 1e-5, 2e-5};
}
constexpr double kMmaMeanOutTol = 5e-4;

// 4 flops (2 for q.k, 2 for p.v) per visible (query, key) pair, head and channel.
double block_flops(const AttentionBlockCase& c) {
  double pairs = 0;
  for (int64_t i = 0; i < c.lq; ++i) pairs += c.causal ? std::clamp<double>(c.q_pos0 + i - c.k_pos0 + 1, 0, c.lk) : c.lk;
  return 4.0 * pairs * c.s.q_heads * c.s.head_dim;
}

// One block of keys folded into a state that already holds an earlier block
// of 5 keys (so a loaded state is rescaled); the perf cases fold one causal
// L x L block into a fresh state.
class BlockCase : public OpCase {
 public:
  BlockCase(const AttentionBlockCase& c, Kernel k, bool perf = false) : c_(c), k_(k), perf_(perf) {}
  std::string describe() const override { return std::string(kernel_name(k_)) + ", " + test::describe(c_); }
  bool supports(const Backend& b) const override { return kernel_runs_on(k_, b); }
  bool on_tensor_cores() const override { return is_mma(k_); }
  void setup(Memory& m) override {
    const kernels::AttentionShape& s = c_.s;
    scale_ = 1.f / std::sqrt(float(s.head_dim));
    const bool round = is_mma(k_);  // the tensor cores multiply bf16 values: the reference sees them too
    in_ = make_attention_inputs(s, c_.lq, c_.lk, c_.pad, 4);
    if (!perf_) prev_ = make_attention_inputs(s, c_.lq, 5, c_.pad, 1);
    if (round) in_ = bf16_rounded(in_), prev_ = bf16_rounded(prev_);
    const bool b16 = !fp32_inputs(k_);
    auto put = [&](const std::vector<float>& v) -> void* {
      return b16 ? static_cast<void*>(m.put(to_bf16(v))) : static_cast<void*>(m.put(v));
    };
    d_q_ = put(in_.q), d_k_ = put(in_.k), d_v_ = put(in_.v);
    if (!perf_) d_pk_ = put(prev_.k), d_pv_ = put(prev_.v);
    const int64_t rows = c_.lq * s.q_heads;
    acc_ = static_cast<float*>(m.bytes(rows * s.head_dim * 4));
    m_ = static_cast<float*>(m.bytes(rows * 4));
    l_ = static_cast<float*>(m.bytes(rows * 4));
    RINGSCAN_OP(m, attention_init, s, c_.lq, acc_, m_, l_);
#ifdef RINGSCAN_WITH_CUDA
    if (is_mma(k_) && k_ != Kernel::MmaNoWorkspace)
      ws_ = m.workspace(kernels::cuda::attention_block_mma_workspace(s, c_.lq, std::max<int64_t>(c_.lk, 5)));
#endif
    // Both blocks use in_'s queries: the state belongs to them.
    if (!perf_) fold(m, d_pk_, d_pv_, 5, c_.k_pos0 - 5);
  }
  void run(Memory& m) override { fold(m, d_k_, d_v_, c_.lk, c_.k_pos0); }
  ::testing::AssertionResult verify(Memory& m) override {
    const kernels::AttentionShape& s = c_.s;
    AttentionState expect(s, c_.lq), got(s, c_.lq);
    kernels::ref::attention_init(s, c_.lq, expect.acc.data(), expect.m.data(), expect.l.data());
    ref_fold(prev_, in_, c_.q_pos0, 0, 5, c_.k_pos0 - 5, scale_, c_.causal, expect);
    ref_fold(in_, in_, c_.q_pos0, 0, c_.lk, c_.k_pos0, scale_, c_.causal, expect);
    got.acc = m.get(acc_, expect.acc.size());
    got.m = m.get(m_, expect.m.size());
    got.l = m.get(l_, expect.l.size());
    expect_attention_states_close(s, c_.lq, got, expect, tolerances(k_, m.backend()));
    if (is_mma(k_)) {
      const std::vector<float> a = ref_finalize(s, c_.lq, got), b = ref_finalize(s, c_.lq, expect);
      double sum = 0;
      for (size_t i = 0; i < a.size(); ++i) sum += std::fabs(double(a[i]) - b[i]);
      const double mean = sum / std::max<size_t>(a.size(), 1);
      if (mean >= kMmaMeanOutTol) return ::testing::AssertionFailure() << "mean output error " << mean;
    }
    return ::testing::AssertionSuccess();
  }
  double flops() const override { return block_flops(c_); }
  double bytes() const override {
    const double e = fp32_inputs(k_) ? 4 : 2;
    return e * (c_.lq * c_.s.q_heads + 2.0 * c_.lk * c_.s.kv_heads) * c_.s.head_dim +
           8.0 * c_.lq * c_.s.q_heads * (c_.s.head_dim + 2);
  }

 private:
  void fold(Memory& m, const void* k, const void* v, int64_t lk, int64_t k_pos0) {
    const kernels::AttentionShape& s = c_.s;
    if (!is_mma(k_)) {
      const CpuAttentionPathGuard path(cpu_path(k_));
      RINGSCAN_OP(m, attention_block, s, static_cast<const float*>(d_q_), in_.ld_q, c_.lq, c_.q_pos0,
                  static_cast<const float*>(k), in_.ld_k, static_cast<const float*>(v), in_.ld_v, lk, k_pos0, scale_,
                  c_.causal, acc_, m_, l_);
      return;
    }
#ifdef RINGSCAN_WITH_CUDA
    kernels::cuda::set_attention_mma_warps(k_ == Kernel::MmaBf16In8Warps ? 8 : 4);
    kernels::cuda::attention_block_mma(s, k_ == Kernel::MmaF32In ? DType::F32 : DType::BF16, d_q_, in_.ld_q, c_.lq,
                                       c_.q_pos0, k, in_.ld_k, v, in_.ld_v, lk, k_pos0, scale_, c_.causal, acc_, m_,
                                       l_, ws_, m.stream());
    kernels::cuda::set_attention_mma_warps(4);
#endif
  }

  AttentionBlockCase c_;
  Kernel k_;
  bool perf_;
  float scale_ = 1.f;
  AttentionInputs in_{}, prev_{};
  void *d_q_ = nullptr, *d_k_ = nullptr, *d_v_ = nullptr, *d_pk_ = nullptr, *d_pv_ = nullptr;
  float *acc_ = nullptr, *m_ = nullptr, *l_ = nullptr;
  kernels::Workspace ws_;
};

Cases attention_block_cases_for(const PerfShapes* p) {
  Cases c;
  if (p) {
    const AttentionBlockCase whole{{p->q_heads, p->kv_heads, p->head_dim}, p->tokens, p->tokens, 0, 0, 0, true};
    for (Kernel k : {Kernel::Fp32, Kernel::MmaBf16In}) add<BlockCase>(c, whole, k, true);
    return c;
  }
  for (const AttentionBlockCase& a : attention_block_cases()) {
    for (Kernel k : {Kernel::Fp32, Kernel::MmaF32In, Kernel::MmaBf16In, Kernel::MmaBf16In8Warps}) add<BlockCase>(c, a, k);
    for (Kernel k : kCpuKernels) add<BlockCase>(c, a, k);
    if (a.lq == 1) add<BlockCase>(c, a, Kernel::MmaNoWorkspace);  // only short queries split
  }
  return c;
}

// attention_block_kv (cpu only: the GPU reads bf16 K/V through attention_block_mma):
// K and V stored as bf16 (a saved state's rows used in place), against
// ref::attention_block_kv on the same bf16 rows; as BlockCase, the block folds
// into a state that already holds 5 keys. Tolerances: the fp32 cpu kernel's
// (the rows are widened exactly, so the arithmetic is attention_block's).
class BlockKvCase : public OpCase {
 public:
  BlockKvCase(const AttentionBlockCase& c, Kernel k, bool perf = false) : c_(c), k_(k), perf_(perf) {}
  std::string describe() const override { return std::string("bf16 K/V, ") + kernel_name(k_) + ", " + test::describe(c_); }
  bool supports(const Backend& b) const override { return !b.is_cuda() && kernel_runs_on(k_, b); }
  void setup(Memory& m) override {
    const kernels::AttentionShape& s = c_.s;
    scale_ = 1.f / std::sqrt(float(s.head_dim));
    in_ = make_attention_inputs(s, c_.lq, c_.lk, c_.pad, 4);
    prev_ = make_attention_inputs(s, c_.lq, perf_ ? 0 : 5, c_.pad, 1);
    k16_ = to_bf16(in_.k), v16_ = to_bf16(in_.v), pk16_ = to_bf16(prev_.k), pv16_ = to_bf16(prev_.v);
    d_q_ = m.put(in_.q), d_k_ = m.put(k16_), d_v_ = m.put(v16_);
    if (!perf_) d_pk_ = m.put(pk16_), d_pv_ = m.put(pv16_);
    const int64_t rows = c_.lq * s.q_heads;
    acc_ = static_cast<float*>(m.bytes(rows * s.head_dim * 4));
    m_ = static_cast<float*>(m.bytes(rows * 4));
    l_ = static_cast<float*>(m.bytes(rows * 4));
    kernels::cpu::attention_init(s, c_.lq, acc_, m_, l_);
    if (!perf_) fold(kernels::cpu::attention_block_kv, d_pk_, d_pv_, 5, c_.k_pos0 - 5, acc_, m_, l_);
  }
  void run(Memory&) override { fold(kernels::cpu::attention_block_kv, d_k_, d_v_, c_.lk, c_.k_pos0, acc_, m_, l_); }
  ::testing::AssertionResult verify(Memory& m) override {
    const kernels::AttentionShape& s = c_.s;
    AttentionState expect(s, c_.lq), got(s, c_.lq);
    kernels::ref::attention_init(s, c_.lq, expect.acc.data(), expect.m.data(), expect.l.data());
    fold(kernels::ref::attention_block_kv, pk16_.data(), pv16_.data(), 5, c_.k_pos0 - 5, expect.acc.data(),
         expect.m.data(), expect.l.data());
    fold(kernels::ref::attention_block_kv, k16_.data(), v16_.data(), c_.lk, c_.k_pos0, expect.acc.data(),
         expect.m.data(), expect.l.data());
    got.acc = m.get(acc_, expect.acc.size());
    got.m = m.get(m_, expect.m.size());
    got.l = m.get(l_, expect.l.size());
    expect_attention_states_close(s, c_.lq, got, expect, tolerances(Kernel::Fp32, m.backend()));
    return ::testing::AssertionSuccess();
  }
  double flops() const override { return block_flops(c_); }
  double bytes() const override {
    return 4.0 * c_.lq * c_.s.q_heads * c_.s.head_dim + 2.0 * 2 * c_.lk * c_.s.kv_heads * c_.s.head_dim +
           8.0 * c_.lq * c_.s.q_heads * (c_.s.head_dim + 2);
  }

 private:
  template <class Fn>
  void fold(Fn block, const void* k, const void* v, int64_t lk, int64_t k_pos0, float* acc, float* m, float* l) {
    const CpuAttentionPathGuard path(cpu_path(k_));
    block(c_.s, static_cast<const float*>(d_q_), in_.ld_q, c_.lq, c_.q_pos0, DType::BF16, k,
          in_.ld_k, v, in_.ld_v, lk, k_pos0, scale_, c_.causal, acc, m, l);
  }

  AttentionBlockCase c_;
  Kernel k_;
  bool perf_;
  float scale_ = 1.f;
  AttentionInputs in_{}, prev_{};
  std::vector<uint16_t> k16_, v16_, pk16_, pv16_;
  const void *d_q_ = nullptr, *d_k_ = nullptr, *d_v_ = nullptr, *d_pk_ = nullptr, *d_pv_ = nullptr;
  float *acc_ = nullptr, *m_ = nullptr, *l_ = nullptr;
};

Cases attention_block_kv_cases_for(const PerfShapes* p) {
  Cases c;
  if (p) {
    add<BlockKvCase>(c, AttentionBlockCase{{p->q_heads, p->kv_heads, p->head_dim}, p->tokens, p->tokens, 0, 0, 0, true},
                     Kernel::Fp32, true);
    return c;
  }
  for (const AttentionBlockCase& a : attention_block_cases())
    for (Kernel k : {Kernel::Fp32, Kernel::CpuPortable, Kernel::CpuAvx512}) add<BlockKvCase>(c, a, k);
  return c;
}

// Packed sequences (attention_varlen): documents of the given lengths stacked
// (a 0 is an empty document: its id is skipped, as the packed prefill numbers
// them), folded into a fresh state in one call, against the reference run on
// each document's rows alone (attention_block, so the expectation does not
// share the op's own split into sequences). Lengths cross the kernels' tiles
// (64 packed rows, 64 keys) and include length-1 documents. A query that sees
// one key of another document moves its output by 1e-2 to 1e-1: far outside
// every tolerance above.
struct VarlenLayout {
  kernels::AttentionShape s;
  std::vector<int64_t> docs;
  int64_t pad;
  bool causal;
};

class VarlenCase : public OpCase {
 public:
  VarlenCase(VarlenLayout c, Kernel k) : c_(std::move(c)), k_(k) {
    rows_ = std::accumulate(c_.docs.begin(), c_.docs.end(), int64_t{0});
    for (size_t d = 0; d < c_.docs.size(); ++d) seq_.insert(seq_.end(), c_.docs[d], static_cast<int32_t>(d));
  }
  std::string describe() const override {
    std::ostringstream o;
    o << kernel_name(k_) << ", heads " << c_.s.q_heads << "/" << c_.s.kv_heads << " dim " << c_.s.head_dim
      << " pad " << c_.pad << (c_.causal ? " causal" : " full") << ", documents";
    for (int64_t n : c_.docs) o << " " << n;
    return o.str();
  }
  bool supports(const Backend& b) const override { return kernel_runs_on(k_, b); }
  bool on_tensor_cores() const override { return is_mma(k_); }
  void setup(Memory& m) override {
    const kernels::AttentionShape& s = c_.s;
    scale_ = 1.f / std::sqrt(float(s.head_dim));
    in_ = make_attention_inputs(s, rows_, rows_, c_.pad, 61);
    if (is_mma(k_)) in_ = bf16_rounded(in_);  // the tensor cores multiply bf16 values: the reference sees them too
    const bool b16 = !fp32_inputs(k_);
    auto put = [&](const std::vector<float>& v) -> void* {
      return b16 ? static_cast<void*>(m.put(to_bf16(v))) : static_cast<void*>(m.put(v));
    };
    d_q_ = put(in_.q), d_k_ = put(in_.k), d_v_ = put(in_.v);
    d_seq_ = m.put(seq_.empty() ? std::vector<int32_t>{0} : seq_);
    const int64_t srows = std::max<int64_t>(rows_, 1) * s.q_heads;
    acc_ = static_cast<float*>(m.bytes(srows * s.head_dim * 4));
    m_ = static_cast<float*>(m.bytes(srows * 4));
    l_ = static_cast<float*>(m.bytes(srows * 4));
    RINGSCAN_OP(m, attention_init, s, rows_, acc_, m_, l_);
  }
  void run(Memory& m) override {
    const kernels::AttentionShape& s = c_.s;
    if (!is_mma(k_)) {
      const CpuAttentionPathGuard path(cpu_path(k_));
      RINGSCAN_OP(m, attention_varlen, s, static_cast<const float*>(d_q_), in_.ld_q, static_cast<const float*>(d_k_),
                  in_.ld_k, static_cast<const float*>(d_v_), in_.ld_v, rows_, d_seq_, scale_, c_.causal, acc_, m_, l_);
      return;
    }
#ifdef RINGSCAN_WITH_CUDA
    kernels::cuda::set_attention_mma_warps(k_ == Kernel::MmaBf16In8Warps ? 8 : 4);
    kernels::cuda::attention_varlen_mma(s, k_ == Kernel::MmaF32In ? DType::F32 : DType::BF16, d_q_, in_.ld_q, d_k_,
                                        in_.ld_k, d_v_, in_.ld_v, rows_, d_seq_, scale_, c_.causal, acc_, m_, l_,
                                        m.stream());
    kernels::cuda::set_attention_mma_warps(4);
#endif
  }
  ::testing::AssertionResult verify(Memory& m) override {
    const kernels::AttentionShape& s = c_.s;
    if (rows_ == 0) return ::testing::AssertionSuccess();  // nothing to compute (the call must not fault)
    AttentionState expect(s, rows_), got(s, rows_);
    kernels::ref::attention_init(s, rows_, expect.acc.data(), expect.m.data(), expect.l.data());
    int64_t r = 0;
    for (int64_t n : c_.docs) {
      if (n > 0)
        kernels::ref::attention_block(s, in_.q.data() + r * in_.ld_q, in_.ld_q, n, 0, in_.k.data() + r * in_.ld_k,
                                      in_.ld_k, in_.v.data() + r * in_.ld_v, in_.ld_v, n, 0, scale_, c_.causal,
                                      expect.acc.data() + r * s.q_heads * s.head_dim, expect.m.data() + r * s.q_heads,
                                      expect.l.data() + r * s.q_heads);
      r += n;
    }
    got.acc = m.get(acc_, expect.acc.size());
    got.m = m.get(m_, expect.m.size());
    got.l = m.get(l_, expect.l.size());
    expect_attention_states_close(s, rows_, got, expect, tolerances(k_, m.backend()));
    if (is_mma(k_)) {
      const std::vector<float> a = ref_finalize(s, rows_, got), b = ref_finalize(s, rows_, expect);
      double sum = 0;
      for (size_t i = 0; i < a.size(); ++i) sum += std::fabs(double(a[i]) - b[i]);
      const double mean = sum / std::max<size_t>(a.size(), 1);
      if (mean >= kMmaMeanOutTol) return ::testing::AssertionFailure() << "mean output error " << mean;
    }
    return ::testing::AssertionSuccess();
  }
  double flops() const override {
    double pairs = 0;
    for (int64_t n : c_.docs) pairs += c_.causal ? 0.5 * n * (n + 1) : double(n) * n;
    return 4.0 * pairs * c_.s.q_heads * c_.s.head_dim;
  }
  double bytes() const override {
    const double e = fp32_inputs(k_) ? 4 : 2;
    return e * rows_ * (c_.s.q_heads + 2.0 * c_.s.kv_heads) * c_.s.head_dim + 4.0 * rows_ +
           8.0 * rows_ * c_.s.q_heads * (c_.s.head_dim + 2);
  }

 private:
  VarlenLayout c_;
  Kernel k_;
  int64_t rows_ = 0;
  std::vector<int32_t> seq_;
  float scale_ = 1.f;
  AttentionInputs in_{};
  void *d_q_ = nullptr, *d_k_ = nullptr, *d_v_ = nullptr;
  int32_t* d_seq_ = nullptr;
  float *acc_ = nullptr, *m_ = nullptr, *l_ = nullptr;
};

Cases attention_varlen_cases_for(const PerfShapes* p) {
  Cases c;
  if (p) {
    // The packed prefill's shape: the block's tokens as 8 documents.
    const kernels::AttentionShape s{p->q_heads, p->kv_heads, p->head_dim};
    const VarlenLayout packed{s, std::vector<int64_t>(8, std::max<int64_t>(p->tokens / 8, 1)), 0, true};
    for (Kernel k : {Kernel::Fp32, Kernel::MmaBf16In}) add<VarlenCase>(c, packed, k);
    return c;
  }
  const std::vector<VarlenLayout> layouts = {
      // Empty documents first, between and last; length-1 documents; a 70-row
      // document over two key tiles and three query tiles (G = 2: 32 queries a tile).
      {{4, 2, 32}, {0, 1, 5, 0, 70, 1, 37, 0}, 0, true},
      // The model's heads (GQA 40/8, head_dim 128: 12.8 queries a tile).
      {{40, 8, 128}, {3, 66, 1, 29}, 0, true},
      // Odd head_dim (the unvectorised loads) and padded rows, no causal mask:
      // each row sees its whole document.
      {{3, 3, 7}, {1, 1, 1, 20, 45}, 5, false},
      {{6, 2, 24}, {90}, 3, true},  // one document: attention_block over all rows
      {{4, 2, 32}, {}, 0, true},    // no rows at all
  };
  for (const VarlenLayout& l : layouts) {
    for (Kernel k : {Kernel::Fp32, Kernel::MmaF32In, Kernel::MmaBf16In, Kernel::MmaBf16In8Warps}) add<VarlenCase>(c, l, k);
    for (Kernel k : kCpuKernels) add<VarlenCase>(c, l, k);
  }
  return c;
}

// Merging a partial state over other keys into a state (ring attention,
// sharded decode): rows where either side saw no key included. The reference
// computes a w1 + b w2 in double; the others in fp32 with fp32 exp weights
// (<= 2 ulp) : at most (|a| w1 + |b| w2) (2 ulp of exp + 2 roundings) <
// 5e-7 (|a| w1 + |b| w2). The max is exact.
class MergeCase : public OpCase {
 public:
  MergeCase(kernels::AttentionShape s, int64_t lq) : s_(s), lq_(lq) {}
  std::string describe() const override {
    std::ostringstream o;
    o << "heads " << s_.q_heads << "/" << s_.kv_heads << " dim " << s_.head_dim << " lq " << lq_;
    return o.str();
  }
  void setup(Memory& m) override {
    const AttentionInputs a = make_attention_inputs(s_, lq_, 40, 0, 31), b = make_attention_inputs(s_, lq_, 50, 0, 41);
    kernels::ref::attention_init(s_, lq_, pa_.acc.data(), pa_.m.data(), pa_.l.data());
    kernels::ref::attention_init(s_, lq_, pb_.acc.data(), pb_.m.data(), pb_.l.data());
    ref_fold(a, a, 100, 0, 40, 80, 0.125f, true, pa_);  // some rows see none of a's keys
    ref_fold(b, a, 100, 0, 50, 30, 0.125f, true, pb_);
    acc_ = m.put(pa_.acc), m_ = m.put(pa_.m), l_ = m.put(pa_.l);
    acc2_ = m.put(pb_.acc), m2_ = m.put(pb_.m), l2_ = m.put(pb_.l);
  }
  void run(Memory& m) override { RINGSCAN_OP(m, attention_merge, s_, lq_, acc2_, m2_, l2_, acc_, m_, l_); }
  ::testing::AssertionResult verify(Memory& m) override {
    AttentionState expect = pa_;
    kernels::ref::attention_merge(s_, lq_, pb_.acc.data(), pb_.m.data(), pb_.l.data(), expect.acc.data(),
                                  expect.m.data(), expect.l.data());
    std::vector<float> tol_l(pa_.l.size()), tol_acc(pa_.acc.size());
    for (size_t r = 0; r < pa_.m.size(); ++r) {
      const double mx = std::max(pa_.m[r], pb_.m[r]);
      const double w1 = mx == -INFINITY ? 0 : std::exp(pa_.m[r] - mx), w2 = mx == -INFINITY ? 0 : std::exp(pb_.m[r] - mx);
      tol_l[r] = static_cast<float>(5e-7 * (pa_.l[r] * w1 + pb_.l[r] * w2));
      for (int64_t d = 0; d < s_.head_dim; ++d) {
        const size_t e = r * s_.head_dim + d;
        tol_acc[e] = static_cast<float>(5e-7 * (std::fabs(pa_.acc[e]) * w1 + std::fabs(pb_.acc[e]) * w2));
      }
    }
    const int64_t rows = lq_ * s_.q_heads;
    ::testing::AssertionResult ok = all_close(m.get(m_, rows), expect.m, 0, 0);
    if (!ok) return ok << " (m)";
    const std::vector<float> l = m.get(l_, rows), acc = m.get(acc_, rows * s_.head_dim);
    ok = all_within(l.data(), 0, expect.l.data(), 0, tol_l.data(), 0, 1, rows);
    if (!ok) return ok << " (l)";
    ok = all_within(acc.data(), 0, expect.acc.data(), 0, tol_acc.data(), 0, 1, rows * s_.head_dim);
    if (!ok) return ok << " (acc)";
    return ok;
  }
  double bytes() const override { return 12.0 * lq_ * s_.q_heads * (s_.head_dim + 2); }

 private:
  kernels::AttentionShape s_;
  int64_t lq_;
  AttentionState pa_{s_, lq_}, pb_{s_, lq_};
  float *acc_ = nullptr, *m_ = nullptr, *l_ = nullptr, *acc2_ = nullptr, *m2_ = nullptr, *l2_ = nullptr;
};

// A state normalised into attention's output, strided (its padding must keep
// its sentinel), fp32 (one division, correctly rounded on every side: 1e-6
// relative covers a double-rounded reference) or bf16 (cuda, o_proj's input:
// one more rounding, 2^-8 relative).
class FinalizeCase : public OpCase {
 public:
  FinalizeCase(kernels::AttentionShape s, int64_t lq, int64_t pad, bool bf16) : s_(s), lq_(lq), pad_(pad), bf16_(bf16) {}
  std::string describe() const override {
    std::ostringstream o;
    o << (bf16_ ? "bf16 out, " : "f32 out, ") << "heads " << s_.q_heads << "/" << s_.kv_heads << " dim " << s_.head_dim
      << " lq " << lq_ << " row padding " << pad_;
    return o.str();
  }
  bool supports(const Backend& b) const override { return !bf16_ || b.is_cuda(); }
  void setup(Memory& m) override {
    const AttentionInputs in = make_attention_inputs(s_, lq_, 40, 0, 51);
    kernels::ref::attention_init(s_, lq_, st_.acc.data(), st_.m.data(), st_.l.data());
    ref_fold(in, in, 10, 0, 40, 0, 0.2f, true, st_);
    ld_ = s_.q_heads * s_.head_dim + pad_;
    acc_ = m.put(st_.acc), l_ = m.put(st_.l);
    out_ = bf16_ ? static_cast<void*>(m.put(std::vector<uint16_t>(lq_ * ld_, kBf16Sentinel)))
                 : static_cast<void*>(m.put(std::vector<float>(lq_ * ld_, -3.f)));
  }
  void run(Memory& m) override {
    if (bf16_) {
#ifdef RINGSCAN_WITH_CUDA
      kernels::cuda::attention_finalize_to(s_, lq_, acc_, l_, out_, ld_, DType::BF16, m.stream());
#endif
      return;
    }
    RINGSCAN_OP(m, attention_finalize, s_, lq_, acc_, l_, static_cast<float*>(out_), ld_);
  }
  ::testing::AssertionResult verify(Memory& m) override {
    const int64_t W = s_.q_heads * s_.head_dim;
    std::vector<float> expect(lq_ * ld_, -3.f);
    kernels::ref::attention_finalize(s_, lq_, st_.acc.data(), st_.l.data(), expect.data(), ld_);
    if (bf16_) {
      return bf16_out_close(m.get(static_cast<const uint16_t*>(out_), lq_ * ld_), expect, lq_, W, ld_, 1e-30);
    }
    const std::vector<float> got = m.get(static_cast<const float*>(out_), lq_ * ld_);
    ::testing::AssertionResult ok = padding_untouched(got.data(), ld_, lq_, W, -3.f);
    if (!ok) return ok;
    return all_close(got.data(), ld_, expect.data(), ld_, lq_, W, 0, 1e-6);
  }
  double bytes() const override { return double(lq_) * s_.q_heads * (s_.head_dim * (bf16_ ? 6 : 8) + 4); }

 private:
  kernels::AttentionShape s_;
  int64_t lq_, pad_;
  bool bf16_;
  int64_t ld_ = 0;
  AttentionState st_{s_, lq_};
  float *acc_ = nullptr, *l_ = nullptr;
  void* out_ = nullptr;
};

}  // namespace

void add_attention_ops(std::vector<OpFamily>& f) {
  f.push_back({"attention_block", attention_block_cases_for});
  f.push_back({"attention_block_kv", attention_block_kv_cases_for});
  f.push_back({"attention_varlen", attention_varlen_cases_for});
  f.push_back({"attention_merge", [](const PerfShapes* p) {
                 Cases c;
                 if (p) {
                   add<MergeCase>(c, kernels::AttentionShape{p->q_heads, p->kv_heads, p->head_dim}, p->tokens);
                   return c;
                 }
                 for (int64_t lq : {1, 37}) add<MergeCase>(c, kernels::AttentionShape{8, 2, 64}, lq);
                 add<MergeCase>(c, kernels::AttentionShape{3, 3, 7}, 5);
                 return c;
               }});
  f.push_back({"attention_finalize", [](const PerfShapes* p) {
                 Cases c;
                 for (bool bf16 : {false, true}) {
                   if (p) {
                     add<FinalizeCase>(c, kernels::AttentionShape{p->q_heads, p->kv_heads, p->head_dim}, p->tokens, 0, bf16);
                     continue;
                   }
                   add<FinalizeCase>(c, kernels::AttentionShape{4, 2, 24}, 19, 13, bf16);
                   add<FinalizeCase>(c, kernels::AttentionShape{40, 8, 128}, 7, 0, bf16);
                 }
                 return c;
               }});
}

}  // namespace ringscan::test::ops
