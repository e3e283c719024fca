// Mamba-2's SSD: the chunked scan (fp32 on cpu and cuda, tensor-core bf16 on
// cuda), the incoming-state correction of sequence parallelism, and the
// one-token decode step, each against the double-precision token-by-token
// references on one case list (the generators of kernels/ssd_test_util.h).
#include <cmath>
#include <limits>
#include <optional>
#include <random>
#include <sstream>

#include "backend_ops/op_case.h"
#include "kernels/ssd_scan.h"
#include "kernels/ssd_step.h"
#include "kernels/ssd_test_util.h"

namespace ringscan::test::ops {
namespace {

using kernels::SsdShape;

// fp32 kernels against the double reference: atol = kTol * max|expected| plus
// rtol = kTol. They sum the same terms in another order in fp32 (GEMMs over up
// to `chunk` tokens and `state` entries, exponentials of fp32-rounded double
// differences, states carried from chunk to chunk), so each output carries a
// few fp32 roundings (eps 6e-8) of terms that can cancel: an output near zero
// is judged against the scale of all outputs. Measured worst errors are below
// 5e-7 of the scale (the model-sized heads included); 1e-5 still fails on a
// wrong term, group or chunk boundary (errors of the order of the scale) and
// on decays off by 1e-4. The bf16 kernel: ssd_bf16_scan_close's bound.
constexpr double kTol = 1e-5;

// The inputs of one scan case, made in setup (a perf case's are large).
struct ScanInputs {
  SsdShape s;
  DtRange range = DtRange::Realistic;
  uint64_t seed = 1;
  std::optional<float> a_heads_1_2 = std::nullopt;  // A of heads 1 and 2 (0: no decay, > 0: growth)
};
ScanInputs scan_of(SsdShape s, DtRange r, uint64_t seed, std::optional<float> a = std::nullopt) { return {s, r, seed, a}; }

class SsdScanCase : public OpCase {
 public:
  SsdScanCase(ScanInputs in, bool with_init, bool with_final, bool bf16)
      : p_(in), init_(with_init), final_(with_final), bf16_(bf16) {}
  std::string describe() const override {
    std::ostringstream o;
    o << (bf16_ ? "bf16 mma, " : "fp32, ") << test::describe(p_.s, init_) << (final_ ? "" : " no final state")
      << (p_.range == DtRange::Harsh ? " strong decay" : "");
    if (p_.a_heads_1_2) o << " A[1,2] = " << *p_.a_heads_1_2;
    return o.str();
  }
  bool supports(const Backend& b) const override { return !bf16_ || b.is_cuda(); }
  bool on_tensor_cores() const override { return bf16_; }
  void setup(Memory& m) override {
    in_ = make_ssd_inputs(p_.s, 3, p_.range, p_.seed);
    if (p_.a_heads_1_2 && p_.s.heads > 2) in_.A[1] = in_.A[2] = *p_.a_heads_1_2;
    d_x_ = m.put(in_.x), d_dt_ = m.put(in_.dt), d_A_ = m.put(in_.A), d_B_ = m.put(in_.B), d_C_ = m.put(in_.C);
    d_init_ = init_ ? m.put(in_.init) : nullptr;
    d_y_ = m.put(std::vector<float>(p_.s.len * in_.ld_y, kSsdYSentinel));
    d_fin_ = final_ ? m.put(std::vector<float>(in_.init.size(), std::numeric_limits<float>::quiet_NaN())) : nullptr;
#ifdef RINGSCAN_WITH_CUDA
    if (m.cuda()) ws_ = m.workspace(kernels::cuda::ssd_scan_workspace(p_.s));
#endif
  }
  void run(Memory& m) override {
    if (bf16_) {
#ifdef RINGSCAN_WITH_CUDA
      kernels::cuda::ssd_scan_bf16(p_.s, d_x_, in_.ld_x, d_dt_, d_A_, d_B_, in_.ld_b, d_C_, in_.ld_c, d_init_, d_y_,
                                   in_.ld_y, d_fin_, ws_, m.stream());
#endif
      return;
    }
    RINGSCAN_OP_WS(m, ws_, ssd_scan, p_.s, d_x_, in_.ld_x, d_dt_, d_A_, d_B_, in_.ld_b, d_C_, in_.ld_c, d_init_, d_y_,
                   in_.ld_y, d_fin_);
  }
  ::testing::AssertionResult verify(Memory& m) override {
    SsdOutputs got{m.get(d_y_, p_.s.len * in_.ld_y), final_ ? m.get(d_fin_, in_.init.size()) : std::vector<float>{}};
    const ::testing::AssertionResult pad = ssd_padding_untouched(in_, got.y);
    if (!pad) return pad;
    if (bf16_) return ssd_bf16_scan_close(in_, init_, got);
    const SsdOutputs want = run_ssd_scan(kernels::ref::ssd_scan, in_, init_, final_);
    ::testing::AssertionResult y = ssd_close_y(in_, got.y, want.y, kTol);
    if (!y) return y << " (outputs y)";
    ::testing::AssertionResult st = ssd_close_state(got.final_state, want.final_state, kTol);
    if (!st) return st << " (final state)";
    return ::testing::AssertionSuccess();
  }
  // As bench_gpu's SSD figure: per token the C B^T and intra-chunk products
  // over half a chunk on average, and the chunk-state and state-output products.
  double flops() const override {
    const SsdShape& s = p_.s;
    const double Q = std::min(s.chunk, std::max<int64_t>(s.len, 1)), di = double(s.heads) * s.head_dim;
    return s.len * (2.0 * s.groups * s.state * Q / 2 + 2.0 * di * Q / 2 + 4.0 * di * s.state);
  }
  double bytes() const override {
    const SsdShape& s = p_.s;
    return 4.0 * s.len * (2.0 * s.heads * s.head_dim + 2.0 * s.groups * s.state + s.heads);
  }

 private:
  ScanInputs p_;
  bool init_, final_, bf16_;
  SsdInputs in_;
  float *d_x_ = nullptr, *d_dt_ = nullptr, *d_A_ = nullptr, *d_B_ = nullptr, *d_C_ = nullptr, *d_init_ = nullptr,
        *d_y_ = nullptr, *d_fin_ = nullptr;
  kernels::Workspace ws_;
};

// The correction added to arbitrary outputs and state (those of a zero-state
// scan); without a final state only y changes. Tolerance as the fp32 scan.
class SsdCorrectionCase : public OpCase {
 public:
  SsdCorrectionCase(SsdShape s, uint64_t seed, bool with_final, DtRange range = DtRange::Realistic)
      : s_(s), seed_(seed), final_(with_final), range_(range) {}
  std::string describe() const override {
    return test::describe(s_, true) + (final_ ? "" : " no final state") + (s_.chunk == 0 ? " (no chunk hint)" : "") +
           (range_ == DtRange::Harsh ? " strong decay" : "");
  }
  void setup(Memory& m) override {
    SsdShape gen = s_;
    gen.chunk = s_.chunk ? s_.chunk : 64;  // the inputs' scan needs a chunk; the correction may go without
    in_ = make_ssd_inputs(gen, 1, range_, seed_);
    base_ = run_ssd_scan(kernels::ref::ssd_scan, in_, false);
    in_.s = s_;
    d_dt_ = m.put(in_.dt), d_A_ = m.put(in_.A), d_C_ = m.put(in_.C), d_init_ = m.put(in_.init);
    d_y_ = m.put(base_.y);
    d_fin_ = final_ ? m.put(base_.final_state) : nullptr;
#ifdef RINGSCAN_WITH_CUDA
    if (m.cuda()) ws_ = m.workspace(kernels::cuda::ssd_state_correction_workspace(s_));
#endif
  }
  void run(Memory& m) override {
    RINGSCAN_OP_WS(m, ws_, ssd_state_correction, s_, d_dt_, d_A_, d_C_, in_.ld_c, d_init_, d_y_, in_.ld_y, d_fin_);
  }
  ::testing::AssertionResult verify(Memory& m) override {
    const SsdOutputs want = ref_state_corrected(in_, base_);
    const std::vector<float> y = m.get(d_y_, base_.y.size());
    const ::testing::AssertionResult pad = ssd_padding_untouched(in_, y);
    if (!pad) return pad;
    ::testing::AssertionResult yc = ssd_close_y(in_, y, want.y, kTol);
    if (!yc || !final_) return yc;
    return ssd_close_state(m.get(d_fin_, base_.final_state.size()), want.final_state, kTol);
  }
  double bytes() const override {
    return 4.0 * s_.len * (2.0 * s_.heads * s_.head_dim + s_.groups * s_.state + s_.heads);
  }

 private:
  SsdShape s_;
  uint64_t seed_;
  bool final_;
  DtRange range_;
  SsdInputs in_;
  SsdOutputs base_;
  float *d_dt_ = nullptr, *d_A_ = nullptr, *d_C_ = nullptr, *d_init_ = nullptr, *d_y_ = nullptr, *d_fin_ = nullptr;
  kernels::Workspace ws_;
};

// A segment's total decay (the state scan's a) against the reference: both
// sum dt in double, so the only difference is the exponential's rounding and
// the order of the double sum: 1e-6 relative. A decay taken from the wrong
// head, or a row left out of the sum, is off by far more (dt >= 1e-3 per row).
class SsdSegmentDecayCase : public OpCase {
 public:
  SsdSegmentDecayCase(SsdShape s, DtRange range, uint64_t seed) : s_(s), range_(range), seed_(seed) {}
  std::string describe() const override {
    return "len " + std::to_string(s_.len) + " heads " + std::to_string(s_.heads) +
           (range_ == DtRange::Harsh ? " strong decay" : "");
  }
  void setup(Memory& m) override {
    SsdShape gen = s_;
    gen.chunk = 64;
    in_ = make_ssd_inputs(gen, 1, range_, seed_);
    d_dt_ = m.put(in_.dt), d_A_ = m.put(in_.A);
    d_out_ = m.put(std::vector<float>(s_.heads, std::numeric_limits<float>::quiet_NaN()));
  }
  void run(Memory& m) override { RINGSCAN_OP(m, ssd_segment_decay, s_, d_dt_, d_A_, d_out_); }
  ::testing::AssertionResult verify(Memory& m) override {
    std::vector<float> want(s_.heads);
    kernels::ref::ssd_segment_decay(s_, in_.dt.data(), in_.A.data(), want.data());
    const std::vector<float> got = m.get(d_out_, want.size());
    for (int64_t h = 0; h < s_.heads; ++h)
      if (!(std::fabs(got[h] - want[h]) <= 1e-6 * std::fabs(want[h]) + 1e-30))
        return ::testing::AssertionFailure() << "head " << h << ": got " << got[h] << ", expected " << want[h];
    return ::testing::AssertionSuccess();
  }
  double bytes() const override { return 4.0 * s_.len * s_.heads; }

 private:
  SsdShape s_;
  DtRange range_;
  uint64_t seed_;
  SsdInputs in_;
  float *d_dt_ = nullptr, *d_A_ = nullptr, *d_out_ = nullptr;
};

// `steps` decode steps of a batch of s.len sequences, each with its own state
// (its own allocation), the states carried from step to step. Each step: the
// state update is two fp32 roundings per element, y a sum of `state` fp32
// products, errors carried through the state: the scan's 1e-5 of the scale
// (plus 1e-5 relative) for every step's y and the final states.
class SsdStepCase : public OpCase {
 public:
  // pad_every > 0: every pad_every-th sequence is a padding row (null state
  // pointer: y zeros, its buffer untouched).
  SsdStepCase(SsdShape s, int steps, int pad_every = 0) : s_(s), steps_(steps), pad_(pad_every) {}
  std::string describe() const override {
    std::ostringstream o;
    o << "batch " << s_.len << " heads " << s_.heads << " head_dim " << s_.head_dim << " groups " << s_.groups
      << " state " << s_.state << ", " << steps_ << " steps" << (pad_ ? ", padding rows" : "");
    return o.str();
  }
  bool is_pad(int64_t b) const { return pad_ > 0 && b % pad_ == pad_ - 1; }
  void setup(Memory& m) override {
    const int64_t elems = s_.heads * s_.head_dim * s_.state;
    std::vector<float*> ptrs;
    for (int64_t b = 0; b < s_.len; ++b) {
      states_.push_back(random_floats(elems, 50 + b, -1.f, 1.f));
      d_states_.push_back(m.put(states_.back()));
    }
    std::vector<float*> table = d_states_;
    for (int64_t b = 0; b < s_.len; ++b)
      if (is_pad(b)) table[b] = nullptr;
    d_ptrs_ = m.put(table);
    for (int step = 0; step < steps_; ++step) {
      // Larger steps than prefill's realistic range, so that the decay matters.
      SsdInputs in = make_ssd_inputs(s_.len ? s_ : SsdShape{1, s_.heads, s_.head_dim, s_.groups, s_.state, 1}, 3,
                                     DtRange::Realistic, 100 + step);
      std::mt19937_64 gen(101 + step);
      std::uniform_real_distribution<float> uni(0.f, 1.f);
      for (auto& d : in.dt) d = 0.001f + 0.5f * uni(gen) * uni(gen);
      in.s = s_;
      Step st;
      st.x = m.put(in.x), st.dt = m.put(in.dt), st.A = m.put(in.A), st.B = m.put(in.B), st.C = m.put(in.C);
      st.y = m.put(std::vector<float>(std::max<int64_t>(s_.len, 1) * in.ld_y, kSsdYSentinel));
      inputs_.push_back(std::move(in));
      d_steps_.push_back(st);
    }
  }
  void run(Memory& m) override {
    for (int i = 0; i < steps_; ++i) {
      const SsdInputs& in = inputs_[i];
      const Step& st = d_steps_[i];
      RINGSCAN_OP(m, ssd_step, s_, st.x, in.ld_x, st.dt, st.A, st.B, in.ld_b, st.C, in.ld_c, d_ptrs_, st.y, in.ld_y);
    }
  }
  ::testing::AssertionResult verify(Memory& m) override {
    std::vector<std::vector<float>> want = states_;
    std::vector<float*> hp;
    for (auto& h : want) hp.push_back(h.data());
    for (int64_t b = 0; b < s_.len; ++b)
      if (is_pad(b)) hp[b] = nullptr;
    const int64_t width = s_.heads * s_.head_dim;
    for (int i = 0; i < steps_; ++i) {
      const SsdInputs& in = inputs_[i];
      std::vector<float> y(std::max<int64_t>(s_.len, 1) * in.ld_y, kSsdYSentinel);
      kernels::ref::ssd_step(s_, in.x.data(), in.ld_x, in.dt.data(), in.A.data(), in.B.data(), in.ld_b, in.C.data(),
                             in.ld_c, hp.data(), y.data(), in.ld_y);
      const std::vector<float> got = m.get(d_steps_[i].y, y.size());
      double scale = 1e-30;
      for (int64_t b = 0; b < s_.len; ++b)
        for (int64_t c = 0; c < width; ++c) scale = std::max(scale, double(std::fabs(y[b * in.ld_y + c])));
      ::testing::AssertionResult ok = all_close(got.data(), in.ld_y, y.data(), in.ld_y, s_.len, width, kTol * scale, kTol);
      if (!ok) return ok << " (y of step " << i << ")";
      ok = padding_untouched(got.data(), in.ld_y, s_.len, width, kSsdYSentinel);
      if (!ok) return ok << " (y of step " << i << ")";
    }
    for (int64_t b = 0; b < s_.len; ++b) {
      ::testing::AssertionResult ok = ssd_close_state(m.get(d_states_[b], want[b].size()), want[b], kTol);
      if (!ok) return ok << " (state of sequence " << b << ")";
    }
    return ::testing::AssertionSuccess();
  }
  // Per sequence and step: the state read and written once.
  double bytes() const override { return 8.0 * steps_ * s_.len * s_.heads * s_.head_dim * s_.state; }

 private:
  struct Step {
    float *x, *dt, *A, *B, *C, *y;
  };
  SsdShape s_;
  int steps_, pad_;
  std::vector<std::vector<float>> states_;
  std::vector<float*> d_states_;
  float** d_ptrs_ = nullptr;
  std::vector<SsdInputs> inputs_;
  std::vector<Step> d_steps_;
};

Cases ssd_scan_cases(const PerfShapes* p) {
  Cases c;
  if (p) {
    const SsdShape s{p->tokens, p->mamba_heads, p->mamba_head_dim, p->groups, p->state, p->chunk};
    for (bool bf16 : {false, true}) add<SsdScanCase>(c, scan_of(s, DtRange::Realistic, 1), false, true, bf16);
    return c;
  }
  auto both = [&](ScanInputs in, bool with_init, bool with_final = true) {
    for (bool bf16 : {false, true}) add<SsdScanCase>(c, in, with_init, with_final, bf16);
  };
  // Every head layout, lengths around chunks below, at and above the CUDA
  // kernels' 64-row tiles (100 ends in a partial one; 256 is the model's).
  for_each_chunk_boundary_case({1, 3, 8, 16, 64, 65, 100, 256},
                               [&](const SsdShape& s, bool with_init, DtRange r, uint64_t seed) {
                                 both(scan_of(s, r, seed), with_init);
                               });
  // Many chunks, a chunk longer than the sequence, one not dividing it.
  for_each_long_sequence_case([&](const SsdShape& s, bool with_init, DtRange r, uint64_t seed) {
    both(scan_of(s, r, seed), with_init);
  });
  // Nemotron 3 Nano 4B's heads (head_dim 80, state 128, chunk 256, 12 heads
  // per group), fewer of them: the longest fp32 sums, and sizes that are not
  // multiples of the CUDA kernels' tiles.
  for (bool with_init : {false, true}) {
    both(scan_of({700, 4, 80, 2, 128, 256}, DtRange::Realistic, 3), with_init);
    both(scan_of({300, 24, 80, 2, 128, 256}, DtRange::Realistic, 4), with_init);
  }
  // The tensor-core kernels' tile widths over head_dim (80 where it pads less
  // than 64: 80, 160) and their two sources of per-token factors (shared memory
  // for chunks of up to 256 tokens, global memory for longer chunks).
  for (const SsdShape& sh : {SsdShape{600, 2, 80, 1, 32, 512}, SsdShape{200, 2, 160, 1, 16, 64},
                             SsdShape{130, 3, 96, 1, 16, 300}, SsdShape{90, 2, 40, 2, 24, 32}})
    for (bool with_init : {false, true}) both(scan_of(sh, DtRange::Realistic, 31), with_init);
  // dt*A down to -80 per token: only causal differences may be exponentiated.
  for_each_strong_decay_case([&](const SsdShape& s, bool with_init, DtRange r, uint64_t seed) {
    both(scan_of(s, r, seed), with_init);
  });
  // A = 0 (no decay) and A > 0 (slow growth) on two of four heads.
  for (float a : {0.f, 0.05f})
    for (bool with_init : {false, true}) both(scan_of({200, 4, 6, 2, 8, 64}, DtRange::Realistic, 12, a), with_init);
  // Without a final state.
  for (bool with_init : {false, true}) both(scan_of({77, 4, 6, 2, 8, 16}, DtRange::Realistic, 5), with_init, false);
  return c;
}

// Packed sequences (cuda::ssd_scan_varlen, the GPU's packed prefill of short
// documents): the rows of several sequences stacked, each scanned from a zero
// state in one set of launches, against the reference scan of each sequence
// alone. Tolerances as the unpacked scans: kTol (fp32) and the bf16 bound of
// ssd_bf16_scan_close, applied to each sequence's reference and |terms| scan.
class SsdVarlenCase : public OpCase {
 public:
  SsdVarlenCase(SsdShape s, std::vector<int64_t> lens, int64_t ws_chunks, bool bf16)
      : s_(s), lens_(std::move(lens)), ws_chunks_(ws_chunks), bf16_(bf16) {
    s_.len = 0;
    for (int64_t n : lens_) s_.len += n;
  }
  std::string describe() const override {
    std::ostringstream o;
    o << (bf16_ ? "bf16 mma, " : "fp32, ") << test::describe(s_, false) << ", sequences of";
    for (int64_t n : lens_) o << " " << n;
    if (ws_chunks_) o << ", workspace of " << ws_chunks_ << " chunks";
    return o.str();
  }
  bool supports(const Backend& b) const override { return b.is_cuda(); }
  void setup(Memory& m) override {
    in_ = make_ssd_inputs(s_, 3, DtRange::Realistic, 57);
    std::vector<int32_t> seq;
    for (size_t i = 0; i < lens_.size(); ++i) seq.insert(seq.end(), lens_[i], static_cast<int32_t>(i));
    d_x_ = m.put(in_.x), d_dt_ = m.put(in_.dt), d_A_ = m.put(in_.A), d_B_ = m.put(in_.B), d_C_ = m.put(in_.C);
    d_seq_ = m.put(seq);
    d_y_ = m.put(std::vector<float>(s_.len * in_.ld_y, kSsdYSentinel));
#ifdef RINGSCAN_WITH_CUDA
    ws_ = m.workspace(ws_chunks_ ? kernels::ssd_scan_scratch(s_, ws_chunks_, true).bytes
                                 : kernels::cuda::ssd_scan_workspace(s_));
#endif
  }
  void run(Memory& m) override {
#ifdef RINGSCAN_WITH_CUDA
    kernels::cuda::ssd_scan_varlen(s_, d_x_, in_.ld_x, d_dt_, d_A_, d_B_, in_.ld_b, d_C_, in_.ld_c, d_seq_, d_y_,
                                   in_.ld_y, bf16_, ws_, m.stream());
#endif
  }
  ::testing::AssertionResult verify(Memory& m) override {
    const std::vector<float> got = m.get(d_y_, s_.len * in_.ld_y);
    ::testing::AssertionResult ok = ssd_padding_untouched(in_, got);
    if (!ok) return ok;
    const std::vector<float> want = per_sequence(in_), mag = per_sequence(absolute(in_));
    const int64_t width = s_.heads * s_.head_dim;
    const double scale = ssd_y_scale(in_, want);
    std::vector<float> tol(want.size());
    for (size_t i = 0; i < tol.size(); ++i)
      tol[i] = static_cast<float>(bf16_ ? 5 * std::ldexp(1.0, -8) * std::fabs(mag[i]) + 1e-6 * scale
                                        : kTol * (scale + std::fabs(want[i])));
    return all_within(got.data(), in_.ld_y, want.data(), in_.ld_y, tol.data(), in_.ld_y, s_.len, width);
  }
  double bytes() const override {
    return 4.0 * s_.len * (2.0 * s_.heads * s_.head_dim + 2.0 * s_.groups * s_.state + s_.heads);
  }

 private:
  // y of the reference scan of each sequence alone from a zero state.
  std::vector<float> per_sequence(const SsdInputs& in) const {
    std::vector<float> y(s_.len * in.ld_y, kSsdYSentinel);
    int64_t r = 0;
    for (int64_t n : lens_) {
      SsdShape one = s_;
      one.len = n;
      kernels::ref::ssd_scan(one, in.x.data() + r * in.ld_x, in.ld_x, in.dt.data() + r * s_.heads, in.A.data(),
                             in.B.data() + r * in.ld_b, in.ld_b, in.C.data() + r * in.ld_c, in.ld_c, nullptr,
                             y.data() + r * in.ld_y, in.ld_y, nullptr);
      r += n;
    }
    return y;
  }

  SsdShape s_;
  std::vector<int64_t> lens_;
  int64_t ws_chunks_;
  bool bf16_;
  SsdInputs in_;
  float *d_x_ = nullptr, *d_dt_ = nullptr, *d_A_ = nullptr, *d_B_ = nullptr, *d_C_ = nullptr, *d_y_ = nullptr;
  int32_t* d_seq_ = nullptr;
  kernels::Workspace ws_;
};

Cases ssd_varlen_cases(const PerfShapes* p) {
  Cases c;
  if (p) {  // 64 documents of tokens / 64 each
    for (bool bf16 : {false, true})
      add<SsdVarlenCase>(c, SsdShape{0, p->mamba_heads, p->mamba_head_dim, p->groups, p->state, p->chunk},
                         std::vector<int64_t>(64, std::max<int64_t>(p->tokens / 64, 1)), 0, bf16);
    return c;
  }
  // Boundaries inside chunks, at chunk starts and ends, one-token sequences,
  // sequences longer than a chunk; chunks staged (<= 256) and not; several
  // workspace passes (the state carried across a pass boundary within a sequence).
  const std::vector<int64_t> lens = {1, 5, 70, 16, 64, 1, 200, 33};
  for (const SsdShape& layout : kSsdHeadLayouts)
    for (int64_t chunk : {16, 64, 300})
      for (bool bf16 : {false, true}) {
        SsdShape s = layout;
        s.chunk = chunk;
        add<SsdVarlenCase>(c, s, lens, 0, bf16);
      }
  for (bool bf16 : {false, true}) {
    add<SsdVarlenCase>(c, SsdShape{0, 4, 80, 2, 128, 256}, std::vector<int64_t>{300, 40, 256, 1, 100}, 0, bf16);
    add<SsdVarlenCase>(c, SsdShape{0, 6, 16, 2, 32, 64}, std::vector<int64_t>{130, 64, 7, 200}, 3, bf16);
  }
  return c;
}

Cases ssd_state_correction_cases(const PerfShapes* p) {
  Cases c;
  if (p) {
    add<SsdCorrectionCase>(c, SsdShape{p->tokens, p->mamba_heads, p->mamba_head_dim, p->groups, p->state, p->chunk}, 1,
                           true);
    return c;
  }
  for (const SsdShape& layout : kSsdHeadLayouts)
    for (int64_t chunk : {0, 1, 7, 64})  // 0: no hint (the kernel picks its own blocking)
      for (int64_t len : {0, 1, 63, 200, 1000}) {
        SsdShape s = layout;
        s.len = len;
        s.chunk = chunk;
        for (bool with_final : {true, false}) add<SsdCorrectionCase>(c, s, 60 + len + chunk, with_final);
      }
  // The model's heads (head_dim 80, state 128, 12 heads per group), with strong decay too.
  for (DtRange r : {DtRange::Realistic, DtRange::Harsh})
    add<SsdCorrectionCase>(c, SsdShape{600, 24, 80, 2, 128, 256}, 70, true, r);
  return c;
}

Cases ssd_segment_decay_cases(const PerfShapes* p) {
  Cases c;
  if (p) {
    add<SsdSegmentDecayCase>(c, SsdShape{p->tokens, p->mamba_heads, p->mamba_head_dim, p->groups, p->state, 0},
                             DtRange::Realistic, 1);
    return c;
  }
  // Lengths around the block's 256 threads and its tree; one head and the model's 96.
  for (int64_t heads : {1, 4, 96})
    for (int64_t len : {0, 1, 7, 255, 256, 257, 1000})
      for (DtRange r : {DtRange::Realistic, DtRange::Harsh})
        add<SsdSegmentDecayCase>(c, SsdShape{len, heads, 2, 1, 2, 0}, r, 80 + len + heads);
  return c;
}

Cases ssd_step_cases(const PerfShapes* p) {
  Cases c;
  if (p) {
    for (int64_t batch : {1, 64})
      add<SsdStepCase>(c, SsdShape{batch, p->mamba_heads, p->mamba_head_dim, p->groups, p->state, 0}, 1);
    return c;
  }
  for (const SsdShape s : {SsdShape{1, 4, 8, 2, 16, 0}, SsdShape{5, 8, 16, 1, 64, 0}, SsdShape{3, 96, 80, 8, 128, 0},
                           SsdShape{4, 3, 5, 3, 33, 0}, SsdShape{0, 2, 4, 1, 4, 0}})
    add<SsdStepCase>(c, s, 6);
  add<SsdStepCase>(c, SsdShape{5, 8, 16, 1, 64, 0}, 3, 2);  // padding rows (a captured batch size)
  return c;
}

}  // namespace

void add_ssd_ops(std::vector<OpFamily>& f) {
  f.push_back({"ssd_scan", ssd_scan_cases});
  f.push_back({"ssd_scan_varlen", ssd_varlen_cases});
  f.push_back({"ssd_state_correction", ssd_state_correction_cases});
  f.push_back({"ssd_segment_decay", ssd_segment_decay_cases});
  f.push_back({"ssd_step", ssd_step_cases});
}

}  // namespace ringscan::test::ops
