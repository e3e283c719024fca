// The element-wise ops (activations, the residual and skip additions) and the
// embedding gather.
#include <cmath>
#include <sstream>

#include "backend_ops/op_case.h"
#include "kernels/activations.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"

namespace ringscan::test::ops {
namespace {

// x = relu(x)^2 in place. r * r is one correctly rounded fp32 product on every
// side (the reference's double product of two floats is exact, then rounded
// once): exact. bf16 (cuda::relu_squared_bf16, the engine's MLP): the same
// exact square of the bf16 input, rounded once to bf16 (nearest even, as
// f32_to_bf16 here): exact too.
class ReluSquaredCase : public OpCase {
 public:
  ReluSquaredCase(int64_t n, bool bf16) : n_(n), bf16_(bf16) {}
  std::string describe() const override { return std::string(bf16_ ? "bf16" : "f32") + " n " + std::to_string(n_); }
  bool supports(const Backend& b) const override { return !bf16_ || b.is_cuda(); }
  void setup(Memory& m) override {
    x_ = random_floats(n_, 21, -3.f, 3.f);
    if (n_ > 1) x_[0] = 0.f, x_[1] = -0.f;
    if (bf16_) {
      xb_ = to_bf16(x_);
      x_ = from_bf16(xb_);
      d_x_ = m.put(xb_);
    } else {
      d_x_ = m.put(x_);
    }
  }
  void run(Memory& m) override {
    if (bf16_) {
#ifdef RINGSCAN_WITH_CUDA
      kernels::cuda::relu_squared_bf16(d_x_, n_, m.stream());
#endif
      return;
    }
    RINGSCAN_OP(m, relu_squared, static_cast<float*>(d_x_), n_);
  }
  ::testing::AssertionResult verify(Memory& m) override {
    std::vector<float> expect = x_;
    kernels::ref::relu_squared(expect.data(), n_);
    if (!bf16_) return all_close(m.get(static_cast<const float*>(d_x_), n_), expect, 0, 0);
    return all_close(from_bf16(m.get(static_cast<const uint16_t*>(d_x_), n_)), from_bf16(to_bf16(expect)), 0, 0);
  }
  double bytes() const override { return 2.0 * n_ * (bf16_ ? 2 : 4); }

 private:
  int64_t n_;
  bool bf16_;
  std::vector<float> x_;
  std::vector<uint16_t> xb_;
  void* d_x_ = nullptr;
};

// out = silu(gate) * up; out may alias gate or up. silu in fp32: exp (<= 1
// ulp in glibc, <= 2 in CUDA's expf), add, divide, multiply, no cancellation:
// a few ulp, so 1e-6 relative.
class SiluMulCase : public OpCase {
 public:
  enum class Alias { None, Gate, Up };
  SiluMulCase(int64_t n, Alias a) : n_(n), alias_(a) {}
  std::string describe() const override {
    return std::string(alias_ == Alias::None ? "out" : alias_ == Alias::Gate ? "out = gate" : "out = up") + " n " +
           std::to_string(n_);
  }
  void setup(Memory& m) override {
    gate_ = random_floats(n_, 31, -20.f, 20.f);
    up_ = random_floats(n_, 32, -3.f, 3.f);
    d_gate_ = m.put(gate_);
    d_up_ = m.put(up_);
    d_out_ = alias_ == Alias::Gate ? d_gate_ : alias_ == Alias::Up ? d_up_ : static_cast<float*>(m.bytes(n_ * 4));
  }
  void run(Memory& m) override { RINGSCAN_OP(m, silu_mul, d_gate_, d_up_, n_, d_out_); }
  ::testing::AssertionResult verify(Memory& m) override {
    std::vector<float> expect(n_);
    kernels::ref::silu_mul(gate_.data(), up_.data(), n_, expect.data());
    return all_close(m.get(d_out_, n_), expect, 1e-30, 1e-6);
  }
  double bytes() const override { return 12.0 * n_; }

 private:
  int64_t n_;
  Alias alias_;
  std::vector<float> gate_, up_;
  float *d_gate_ = nullptr, *d_up_ = nullptr, *d_out_ = nullptr;
};

// Mamba's time step from a column slice of in_proj's output. log1p(exp(v)) in
// fp32 against double: a few ulp (log1p is well conditioned; exp's error
// passes through once), so 1e-6 relative. Inputs span torch's threshold 20
// and both clamps.
class DtSoftplusCase : public OpCase {
 public:
  DtSoftplusCase(int64_t rows, int64_t heads, int64_t ld_raw, float lo, float hi, DType wt)
      : rows_(rows), heads_(heads), ld_raw_(ld_raw), lo_(lo), hi_(hi), wt_(wt) {}
  std::string describe() const override {
    std::ostringstream s;
    s << "rows " << rows_ << " heads " << heads_ << " ld_raw " << ld_raw_ << " clamp " << lo_ << ".." << hi_
      << " bias " << dtype_name(wt_);
    return s.str();
  }
  void setup(Memory& m) override {
    raw_ = random_floats(rows_ * ld_raw_, 41, -30.f, 30.f);
    bias_ = random_weight(wt_, 1, heads_, 42, -4.f, 4.f);
    d_raw_ = m.put(raw_);
    d_bias_ = m.weight(bias_);
    d_dt_ = static_cast<float*>(m.bytes(rows_ * heads_ * 4));
  }
  void run(Memory& m) override { RINGSCAN_OP(m, dt_softplus, d_raw_, ld_raw_, rows_, heads_, d_bias_, lo_, hi_, d_dt_); }
  ::testing::AssertionResult verify(Memory& m) override {
    std::vector<float> expect(rows_ * heads_);
    kernels::ref::dt_softplus(raw_.data(), ld_raw_, rows_, heads_, bias_.view(), lo_, hi_, expect.data());
    return all_close(m.get(d_dt_, expect.size()), expect, 1e-30, 1e-6);
  }
  double bytes() const override { return 8.0 * rows_ * heads_; }

 private:
  int64_t rows_, heads_, ld_raw_;
  float lo_, hi_;
  DType wt_;
  std::vector<float> raw_;
  TestWeight bias_;
  float *d_raw_ = nullptr, *d_dt_ = nullptr;
  WeightView d_bias_;
};

// y += x: one fp32 addition per element everywhere: exact.
class AddInplaceCase : public OpCase {
 public:
  explicit AddInplaceCase(int64_t n) : n_(n) {}
  std::string describe() const override { return "n " + std::to_string(n_); }
  void setup(Memory& m) override {
    x_ = random_floats(n_, 3, -2.f, 2.f);
    y_ = random_floats(n_, 4, -2.f, 2.f);
    d_x_ = m.put(x_);
    d_y_ = m.put(y_);
  }
  void run(Memory& m) override { RINGSCAN_OP(m, add_inplace, d_x_, n_, d_y_); }
  ::testing::AssertionResult verify(Memory& m) override {
    std::vector<float> expect = y_;
    kernels::ref::add_inplace(x_.data(), n_, expect.data());
    return all_close(m.get(d_y_, n_), expect, 0, 0);
  }
  double bytes() const override { return 12.0 * n_; }

 private:
  int64_t n_;
  std::vector<float> x_, y_;
  float *d_x_ = nullptr, *d_y_ = nullptr;
};

// Mamba's skip term y += D[h] x. A fused multiply-add (one rounding, which
// the GPU and possibly the CPU compiler use) against product then sum (two):
// 1 ulp of |y| + |D x| < 4, so 1e-6 absolute.
class HeadScaleAddCase : public OpCase {
 public:
  HeadScaleAddCase(int64_t rows, int64_t heads, int64_t head_dim, int64_t ld_x)
      : rows_(rows), heads_(heads), head_dim_(head_dim), ld_x_(ld_x) {}
  std::string describe() const override {
    std::ostringstream s;
    s << "rows " << rows_ << " heads " << heads_ << " head_dim " << head_dim_ << " ld_x " << ld_x_;
    return s.str();
  }
  void setup(Memory& m) override {
    x_ = random_floats(rows_ * ld_x_, 43, -2.f, 2.f);
    D_ = random_floats(heads_, 44, -1.f, 1.f);
    y_ = random_floats(rows_ * heads_ * head_dim_, 45, -2.f, 2.f);
    d_x_ = m.put(x_);
    d_D_ = m.put(D_);
    d_y_ = m.put(y_);
  }
  void run(Memory& m) override { RINGSCAN_OP(m, head_scale_add, d_x_, ld_x_, rows_, heads_, head_dim_, d_D_, d_y_); }
  ::testing::AssertionResult verify(Memory& m) override {
    std::vector<float> expect = y_;
    kernels::ref::head_scale_add(x_.data(), ld_x_, rows_, heads_, head_dim_, D_.data(), expect.data());
    return all_close(m.get(d_y_, y_.size()), expect, 1e-6, 0);
  }
  double bytes() const override { return 12.0 * rows_ * heads_ * head_dim_; }

 private:
  int64_t rows_, heads_, head_dim_, ld_x_;
  std::vector<float> x_, D_, y_;
  float *d_x_ = nullptr, *d_D_ = nullptr, *d_y_ = nullptr;
};

// A gather with an exact dtype conversion (bf16/f16 -> fp32): bit for bit,
// and equal to the stored values (the first id is the table's last row).
class EmbeddingCase : public OpCase {
 public:
  EmbeddingCase(int64_t vocab, int64_t dim, int64_t n, DType wt) : vocab_(vocab), dim_(dim), n_(n), wt_(wt) {}
  std::string describe() const override {
    std::ostringstream s;
    s << "vocab " << vocab_ << " dim " << dim_ << " n " << n_ << " table " << dtype_name(wt_);
    return s.str();
  }
  void setup(Memory& m) override {
    table_ = random_weight(wt_, vocab_, dim_, 11);
    ids_.resize(n_);
    for (int64_t i = 0; i < n_; ++i) ids_[i] = static_cast<int32_t>((i * 7919 + 3) % vocab_);
    ids_[0] = static_cast<int32_t>(vocab_ - 1);
    d_table_ = m.weight(table_);
    d_ids_ = m.put(ids_);
    d_out_ = static_cast<float*>(m.bytes(n_ * dim_ * 4));
  }
  void run(Memory& m) override { RINGSCAN_OP(m, embedding, d_table_, d_ids_, n_, d_out_); }
  ::testing::AssertionResult verify(Memory& m) override {
    std::vector<float> stored(n_ * dim_);
    for (int64_t i = 0; i < n_; ++i)
      for (int64_t d = 0; d < dim_; ++d) stored[i * dim_ + d] = table_.values[ids_[i] * dim_ + d];
    std::vector<float> expect(n_ * dim_);
    kernels::ref::embedding(table_.view(), ids_.data(), n_, expect.data());
    const ::testing::AssertionResult ref_ok = all_close(expect, stored, 0, 0);
    if (!ref_ok) return ::testing::AssertionFailure() << "the reference: " << ref_ok.message();
    return all_close(m.get(d_out_, expect.size()), expect, 0, 0);
  }
  double bytes() const override { return double(n_) * dim_ * (4 + dtype_size(wt_)) + 4.0 * n_; }

 private:
  int64_t vocab_, dim_, n_;
  DType wt_;
  TestWeight table_;
  std::vector<int32_t> ids_;
  WeightView d_table_;
  int32_t* d_ids_ = nullptr;
  float* d_out_ = nullptr;
};

}  // namespace

void add_pointwise_ops(std::vector<OpFamily>& f) {
  f.push_back({"relu_squared", [](const PerfShapes* p) {
                 Cases c;
                 for (bool bf16 : {false, true}) {
                   if (p) {
                     add<ReluSquaredCase>(c, p->tokens * p->intermediate, bf16);
                     continue;
                   }
                   for (int64_t n : {1, 7, 100003}) add<ReluSquaredCase>(c, n, bf16);
                 }
                 return c;
               }});
  f.push_back({"silu_mul", [](const PerfShapes* p) {
                 Cases c;
                 using A = SiluMulCase::Alias;
                 if (p) {
                   add<SiluMulCase>(c, p->tokens * p->intermediate, A::Gate);
                   return c;
                 }
                 for (int64_t n : {1, 7, 65537})
                   for (A a : {A::None, A::Gate, A::Up}) add<SiluMulCase>(c, n, a);
                 return c;
               }});
  f.push_back({"dt_softplus", [](const PerfShapes* p) {
                 Cases c;
                 if (p) {
                   add<DtSoftplusCase>(c, p->tokens, p->mamba_heads, p->in_proj, 0.f, INFINITY, DType::BF16);
                   return c;
                 }
                 struct S { int64_t rows, heads, ld_raw; float lo, hi; };
                 for (S s : {S{1, 1, 1, 0.f, INFINITY}, S{1, 96, 96 * 3 + 5, 0.f, INFINITY}, S{33, 96, 200, 1e-3f, 0.1f},
                             S{5, 7, 7, 0.f, 25.f}, S{257, 96, 7680 + 2 * 1024 + 96, 1e-3f, 10.f}})
                   for (DType dt : kAllDTypes) add<DtSoftplusCase>(c, s.rows, s.heads, s.ld_raw, s.lo, s.hi, dt);
                 return c;
               }});
  f.push_back({"add_inplace", [](const PerfShapes* p) {
                 Cases c;
                 if (p) {
                   add<AddInplaceCase>(c, p->tokens * p->hidden);
                   return c;
                 }
                 for (int64_t n : {1, 7, 100003}) add<AddInplaceCase>(c, n);
                 return c;
               }});
  f.push_back({"head_scale_add", [](const PerfShapes* p) {
                 Cases c;
                 if (p) {
                   add<HeadScaleAddCase>(c, p->tokens, p->mamba_heads, p->mamba_head_dim, p->conv_dim);
                   return c;
                 }
                 struct S { int64_t rows, heads, head_dim, ld_x; };
                 for (S s : {S{1, 1, 1, 1}, S{5, 3, 4, 12}, S{33, 8, 64, 600}, S{77, 12, 64, 1000}, S{200, 24, 64, 2000}})
                   add<HeadScaleAddCase>(c, s.rows, s.heads, s.head_dim, s.ld_x);
                 return c;
               }});
  f.push_back({"embedding", [](const PerfShapes* p) {
                 Cases c;
                 if (p) {
                   add<EmbeddingCase>(c, p->vocab, p->hidden, p->tokens, DType::BF16);
                   return c;
                 }
                 struct S { int64_t vocab, dim, n; };
                 for (S s : {S{1, 1, 1}, S{50, 17, 1}, S{50, 17, 9}, S{1000, 64, 300}, S{1000, 300, 77}})
                   for (DType dt : kAllDTypes) add<EmbeddingCase>(c, s.vocab, s.dim, s.n, dt);
                 return c;
               }});
}

}  // namespace ringscan::test::ops
