// The ops along the sequence: rotary embedding, Mamba's causal convolution,
// and the log-softmax / token log-prob of scoring.
#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <utility>

#include "backend_ops/op_case.h"
#include "kernels/causal_conv1d.h"
#include "kernels/log_softmax.h"
#include "kernels/rope.h"

namespace ringscan::test::ops {
namespace {

constexpr double kU = std::numeric_limits<float>::epsilon() / 2;  // 2^-24

// Rotary embedding in place on strided rows. Every version takes angles in
// double; the fast ones round cos/sin to fp32 (0.5 ulp each) and rotate in
// fp32 (2 products + 1 sum): <= ~3 ulp of |x1| + |x2| <= 2, so 1e-6 absolute
// for inputs in [-1, 1]. Channels past rotary_dim and the row padding must be
// left exactly as they were.
class RopeCase : public OpCase {
 public:
  RopeCase(int64_t rows, int64_t heads, int64_t head_dim, int64_t rotary_dim, int64_t ld_x, int64_t pos0, float theta)
      : rows_(rows), heads_(heads), head_dim_(head_dim), rotary_(rotary_dim), ld_x_(ld_x), pos0_(pos0), theta_(theta) {}
  std::string describe() const override {
    std::ostringstream s;
    s << "rows " << rows_ << " heads " << heads_ << " head_dim " << head_dim_ << " rotary " << rotary_ << " ld_x "
      << ld_x_ << " pos0 " << pos0_ << " theta " << theta_;
    return s.str();
  }
  void setup(Memory& m) override {
    x_ = random_floats(rows_ * ld_x_, 71);
    d_x_ = m.put(x_);
  }
  void run(Memory& m) override { RINGSCAN_OP(m, rope, d_x_, ld_x_, rows_, heads_, head_dim_, rotary_, pos0_, theta_); }
  ::testing::AssertionResult verify(Memory& m) override {
    std::vector<float> expect = x_;
    kernels::ref::rope(expect.data(), ld_x_, rows_, heads_, head_dim_, rotary_, pos0_, theta_);
    const std::vector<float> got = m.get(d_x_, x_.size());
    for (int64_t r = 0; r < rows_; ++r)
      for (int64_t i = 0; i < ld_x_; ++i) {
        const int64_t h = i / head_dim_, d = i % head_dim_;
        if ((h < heads_ && d < rotary_) || got[r * ld_x_ + i] == x_[r * ld_x_ + i]) continue;
        return ::testing::AssertionFailure() << "row " << r << " column " << i << " changed (not rotated)";
      }
    return all_close(got, expect, 1e-6, 0);
  }
  double bytes() const override { return 8.0 * rows_ * heads_ * rotary_; }

 private:
  int64_t rows_, heads_, head_dim_, rotary_, ld_x_, pos0_;
  float theta_;
  std::vector<float> x_;
  float* d_x_ = nullptr;
};

// Depthwise causal conv (+ bias, + silu) over a column slice, with or without
// the K-1 rows of history. K + 1 <= 8 terms summed in fp32 against double:
// <= 8 * 2^-24 * sum|w x| (~1e-6 for the inputs here), then silu in fp32 (a
// few ulp, slope below 1.1): 1e-5 absolute + relative, while a tap read from a
// wrong row is an O(0.1) error.
class CausalConv1dCase : public OpCase {
 public:
  CausalConv1dCase(int64_t rows, int64_t channels, int64_t K, int64_t ld_x, bool history, bool bias, bool silu,
                   DType wt)
      : rows_(rows), C_(channels), K_(K), ld_x_(ld_x), history_(history), bias_(bias), silu_(silu), wt_(wt) {}
  std::string describe() const override {
    std::ostringstream s;
    s << "rows " << rows_ << " channels " << C_ << " K " << K_ << " ld_x " << ld_x_ << (history_ ? " history" : "")
      << (bias_ ? " bias" : "") << (silu_ ? " silu" : "") << " weight " << dtype_name(wt_);
    return s.str();
  }
  void setup(Memory& m) override {
    x_ = random_floats(rows_ * ld_x_, 81, -2.f, 2.f);
    hist_ = random_floats((K_ - 1) * C_, 82, -2.f, 2.f);
    w_ = random_weight(wt_, C_, K_, 83, -0.5f, 0.5f);
    b_ = random_weight(wt_, 1, C_, 84, -0.5f, 0.5f);
    d_x_ = m.put(x_);
    d_hist_ = history_ && K_ > 1 ? m.put(hist_) : nullptr;
    d_w_ = m.weight(w_);
    d_b_ = bias_ ? m.weight(b_) : WeightView{};
    d_out_ = static_cast<float*>(m.bytes(rows_ * C_ * 4));
  }
  void run(Memory& m) override {
    RINGSCAN_OP(m, causal_conv1d, d_x_, ld_x_, rows_, C_, d_hist_, d_w_, d_b_, silu_, d_out_);
  }
  ::testing::AssertionResult verify(Memory& m) override {
    std::vector<float> expect(rows_ * C_);
    kernels::ref::causal_conv1d(x_.data(), ld_x_, rows_, C_, d_hist_ ? hist_.data() : nullptr, w_.view(),
                                bias_ ? b_.view() : WeightView{}, silu_, expect.data());
    return all_close(m.get(d_out_, expect.size()), expect, 1e-5, 1e-5);
  }
  double bytes() const override { return 8.0 * rows_ * C_; }

 private:
  int64_t rows_, C_, K_, ld_x_;
  bool history_, bias_, silu_;
  DType wt_;
  std::vector<float> x_, hist_;
  TestWeight w_, b_;
  float *d_x_ = nullptr, *d_hist_ = nullptr, *d_out_ = nullptr;
  WeightView d_w_, d_b_;
};

// Packed sequences (cuda::causal_conv1d_varlen): each sequence convolved
// alone from a zero history; the reference convolves each one's rows. Same
// tolerance as one sequence.
class CausalConv1dVarlenCase : public OpCase {
 public:
  CausalConv1dVarlenCase(std::vector<int64_t> lens, int64_t channels, int64_t K, int64_t ld_x)
      : lens_(std::move(lens)), C_(channels), K_(K), ld_x_(ld_x) {
    for (int64_t n : lens_) rows_ += n;
  }
  std::string describe() const override {
    std::ostringstream s;
    s << "channels " << C_ << " K " << K_ << " ld_x " << ld_x_ << ", sequences of";
    for (int64_t n : lens_) s << " " << n;
    return s.str();
  }
  bool supports(const Backend& b) const override { return b.is_cuda(); }
  void setup(Memory& m) override {
    x_ = random_floats(rows_ * ld_x_, 85, -2.f, 2.f);
    w_ = random_weight(DType::BF16, C_, K_, 86, -0.5f, 0.5f);
    b_ = random_weight(DType::BF16, 1, C_, 87, -0.5f, 0.5f);
    std::vector<int32_t> seq;
    for (size_t i = 0; i < lens_.size(); ++i) seq.insert(seq.end(), lens_[i], static_cast<int32_t>(i));
    d_x_ = m.put(x_), d_seq_ = m.put(seq);
    d_w_ = m.weight(w_), d_b_ = m.weight(b_);
    d_out_ = static_cast<float*>(m.bytes(rows_ * C_ * 4));
  }
  void run(Memory& m) override {
#ifdef RINGSCAN_WITH_CUDA
    kernels::cuda::causal_conv1d_varlen(d_x_, ld_x_, rows_, C_, d_seq_, d_w_, d_b_, true, d_out_, m.stream());
#endif
  }
  ::testing::AssertionResult verify(Memory& m) override {
    std::vector<float> expect(rows_ * C_);
    int64_t r = 0;
    for (int64_t n : lens_) {
      kernels::ref::causal_conv1d(x_.data() + r * ld_x_, ld_x_, n, C_, nullptr, w_.view(), b_.view(), true,
                                  expect.data() + r * C_);
      r += n;
    }
    return all_close(m.get(d_out_, expect.size()), expect, 1e-5, 1e-5);
  }
  double bytes() const override { return 8.0 * rows_ * C_; }

 private:
  std::vector<int64_t> lens_;
  int64_t C_, K_, ld_x_, rows_ = 0;
  std::vector<float> x_;
  TestWeight w_, b_;
  float *d_x_ = nullptr, *d_out_ = nullptr;
  int32_t* d_seq_ = nullptr;
  WeightView d_w_, d_b_;
};

// The absolute error allowed in a log-probability out = x - lse.
//   cpu: x - max is exact or one rounding, the log-sum comes from a vectorised
//     exp (~2 ulp per term) summed in double (~2 ulp relative -> 1.2e-7
//     absolute after the log), then one subtraction: for |out| up to ~40 (ulp
//     3.8e-6) 1e-6 absolute plus 2e-7 relative, about 3.5 ulp.
//   cuda: the fp32 sum of the exp terms has relative error <= (vocab/512 + 9)
//     * 2^-24 (log_softmax.cu), which is the absolute error of log(sum); expf
//     adds <= 2 ulp per term; x - max rounds at |x - max| <= |out|, moving that
//     term's exp by <= |out| 2^-24; the last subtractions round at |lse| and |out|.
double log_prob_atol(const Memory& m, int64_t vocab, double max_abs_out, double max_abs_lse) {
  if (!m.cuda()) return 1e-6 + 2e-7 * max_abs_out;
  return (vocab / 512.0 + 9 + 2) * kU + 2 * kU * (max_abs_lse + max_abs_out);
}

// log_softmax of [rows, vocab] logits, separate or in place; a masked logit
// (-inf) gives exactly -inf. The reference's rows are distributions.
class LogSoftmaxCase : public OpCase {
 public:
  LogSoftmaxCase(int64_t rows, int64_t vocab, float lo, float hi, bool in_place)
      : rows_(rows), vocab_(vocab), lo_(lo), hi_(hi), in_place_(in_place) {}
  std::string describe() const override {
    std::ostringstream s;
    s << (in_place_ ? "in place" : "out") << ", rows " << rows_ << " vocab " << vocab_ << " logits " << lo_ << ".."
      << hi_;
    return s.str();
  }
  void setup(Memory& m) override {
    x_ = random_floats(rows_ * vocab_, 91, lo_, hi_);
    if (vocab_ > 10) x_[3] = -INFINITY;
    d_x_ = m.put(x_);
    d_out_ = in_place_ ? d_x_ : static_cast<float*>(m.bytes(x_.size() * 4));
  }
  void run(Memory& m) override { RINGSCAN_OP(m, log_softmax, d_x_, rows_, vocab_, d_out_); }
  ::testing::AssertionResult verify(Memory& m) override {
    std::vector<float> expect(x_.size());
    kernels::ref::log_softmax(x_.data(), rows_, vocab_, expect.data());
    double max_out = 0, max_lse = 0;
    for (size_t i = 0; i < x_.size(); ++i)
      if (std::isfinite(expect[i])) {
        max_out = std::max(max_out, std::fabs(double(expect[i])));
        max_lse = std::max(max_lse, std::fabs(double(x_[i]) - expect[i]));
      }
    for (int64_t r = 0; r < rows_; ++r) {
      double s = 0;
      for (int64_t i = 0; i < vocab_; ++i) s += std::exp(double(expect[r * vocab_ + i]));
      if (std::fabs(s - 1) > 1e-5) return ::testing::AssertionFailure() << "reference row " << r << " sums to " << s;
    }
    return all_close(m.get(d_out_, x_.size()), expect, log_prob_atol(m, vocab_, max_out, max_lse), 0);
  }
  double bytes() const override { return 8.0 * rows_ * vocab_; }

 private:
  int64_t rows_, vocab_;
  float lo_, hi_;
  bool in_place_;
  std::vector<float> x_;
  float *d_x_ = nullptr, *d_out_ = nullptr;
};

// Scoring: one entry of each row's log_softmax, with the same tolerance.
class TokenLogProbCase : public OpCase {
 public:
  TokenLogProbCase(int64_t rows, int64_t vocab) : rows_(rows), vocab_(vocab) {}
  std::string describe() const override { return "rows " + std::to_string(rows_) + " vocab " + std::to_string(vocab_); }
  void setup(Memory& m) override {
    x_ = random_floats(rows_ * vocab_, 92, -15.f, 15.f);
    targets_.resize(rows_);
    for (int64_t r = 0; r < rows_; ++r) targets_[r] = static_cast<int32_t>((r * 7919 + 5) % vocab_);
    targets_[0] = static_cast<int32_t>(vocab_ - 1);
    d_x_ = m.put(x_);
    d_t_ = m.put(targets_);
    d_out_ = static_cast<float*>(m.bytes(rows_ * 4));
  }
  void run(Memory& m) override { RINGSCAN_OP(m, token_log_prob, d_x_, rows_, vocab_, d_t_, d_out_); }
  ::testing::AssertionResult verify(Memory& m) override {
    std::vector<float> expect(rows_), full(x_.size());
    kernels::ref::token_log_prob(x_.data(), rows_, vocab_, targets_.data(), expect.data());
    kernels::ref::log_softmax(x_.data(), rows_, vocab_, full.data());
    double max_out = 0;
    for (int64_t r = 0; r < rows_; ++r) {
      if (expect[r] != full[r * vocab_ + targets_[r]])
        return ::testing::AssertionFailure() << "reference row " << r << " differs from its log_softmax entry";
      max_out = std::max(max_out, std::fabs(double(expect[r])));
    }
    return all_close(m.get(d_out_, rows_), expect, log_prob_atol(m, vocab_, max_out, 30.0), 0);
  }
  double bytes() const override { return 4.0 * rows_ * vocab_; }

 private:
  int64_t rows_, vocab_;
  std::vector<float> x_;
  std::vector<int32_t> targets_;
  float *d_x_ = nullptr, *d_out_ = nullptr;
  int32_t* d_t_ = nullptr;
};

Cases rope_cases(const PerfShapes* p) {
  Cases c;
  if (p) {
    const int64_t ld = (p->q_heads + 2 * p->kv_heads) * p->head_dim;
    add<RopeCase>(c, p->tokens, p->q_heads, p->head_dim, p->head_dim, ld, 0, 10000.f);
    return c;
  }
  struct S { int64_t rows, heads, head_dim, rotary, ld_x, pos0; float theta; };
  for (S s : {S{1, 1, 2, 2, 2, 0, 10000.f}, S{1, 40, 128, 128, 40 * 128, 123456, 10000.f},
              S{7, 3, 64, 32, 3 * 64 + 10, 5, 500000.f}, S{50, 8, 128, 64, 8 * 128, 1 << 20, 10000.f},
              S{3, 2, 10, 6, 21, 17, 10.f}, S{33, 8, 128, 128, 8 * 128 + 40 * 128, 0, 10000.f},
              S{19, 5, 64, 32, 5 * 64, 1000000, 10000.f}})
    add<RopeCase>(c, s.rows, s.heads, s.head_dim, s.rotary, s.ld_x, s.pos0, s.theta);
  return c;
}

Cases conv_cases(const PerfShapes* p) {
  Cases c;
  if (p) {
    add<CausalConv1dCase>(c, p->tokens, p->conv_dim, p->conv_kernel, p->in_proj, false, true, true, DType::BF16);
    return c;
  }
  // rows < K - 1 (the halo reaches past the start of x), 1 row (decode), odd
  // channel counts, x as a column slice (ld_x > channels), K from 1 to 7.
  struct S { int64_t rows, channels, K, ld_x; bool history, bias, silu; };
  for (S s : {S{1, 1, 1, 1, false, false, false}, S{1, 1, 4, 1, true, true, true}, S{1, 64, 4, 64, true, true, true},
              S{1, 9728, 4, 9728 * 2, true, true, true}, S{2, 37, 4, 40, true, false, true},
              S{2, 37, 4, 40, false, true, true}, S{3, 37, 4, 37, true, true, false}, S{2, 96, 4, 96, true, true, true},
              S{37, 300, 4, 512, false, true, true}, S{37, 300, 4, 300, true, false, false},
              S{100, 130, 4, 200, true, true, true}, S{100, 130, 4, 200, false, false, false},
              S{5, 7, 1, 7, false, true, true}, S{9, 33, 2, 33, true, true, true}, S{9, 50, 7, 60, true, true, true}})
    for (DType dt : kAllDTypes) add<CausalConv1dCase>(c, s.rows, s.channels, s.K, s.ld_x, s.history, s.bias, s.silu, dt);
  return c;
}

Cases log_softmax_cases(const PerfShapes* p) {
  Cases c;
  if (p) {
    add<LogSoftmaxCase>(c, std::min<int64_t>(p->tokens, 2048), p->vocab, -15.f, 15.f, true);
    return c;
  }
  struct S { int64_t rows, vocab; float lo, hi; };
  for (S s : {S{1, 1, -1.f, 1.f}, S{3, 1000, -10.f, 10.f}, S{3, 1001, -5.f, 5.f}, S{7, 32768, -20.f, 20.f},
              S{1, 131072, -15.f, 15.f}, S{2, 131072, -15.f, 15.f},
              S{17, 4096, 990.f, 1010.f},  // large logits: needs the max subtracted
              S{2, 5000, 990.f, 1010.f}, S{2, 50, -200.f, 0.f}})  // terms that underflow exp
    for (bool in_place : {false, true}) add<LogSoftmaxCase>(c, s.rows, s.vocab, s.lo, s.hi, in_place);
  return c;
}

Cases token_log_prob_cases(const PerfShapes* p) {
  Cases c;
  if (p) {
    add<TokenLogProbCase>(c, std::min<int64_t>(p->tokens, 2048), p->vocab);
    return c;
  }
  for (int64_t vocab : {1, 1000, 1001, 131072}) add<TokenLogProbCase>(c, 9, vocab);
  return c;
}

}  // namespace

void add_sequence_ops(std::vector<OpFamily>& f) {
  f.push_back({"rope", rope_cases});
  f.push_back({"causal_conv1d", conv_cases});
  f.push_back({"causal_conv1d_varlen", [](const PerfShapes* p) {
                 Cases c;
                 if (p) {
                   add<CausalConv1dVarlenCase>(c, std::vector<int64_t>(64, std::max<int64_t>(p->tokens / 64, 1)),
                                               p->conv_dim, p->conv_kernel, p->in_proj);
                   return c;
                 }
                 // One-token sequences and ones shorter than the kernel, next to longer ones.
                 add<CausalConv1dVarlenCase>(c, std::vector<int64_t>{1, 2, 3, 40, 1, 17}, 37, 4, 40);
                 add<CausalConv1dVarlenCase>(c, std::vector<int64_t>{5, 5}, 9728, 4, 9728 * 2);
                 add<CausalConv1dVarlenCase>(c, std::vector<int64_t>{3, 1, 9}, 50, 7, 60);
                 return c;
               }});
  f.push_back({"log_softmax", log_softmax_cases});
  f.push_back({"token_log_prob", token_log_prob_cases});
}

}  // namespace ringscan::test::ops
