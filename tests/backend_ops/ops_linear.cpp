// The GEMMs: linear (the exact-input product every backend has, and its
// accumulating form on cuda) and gemm_bf16 (the GPU engine's bf16 tensor-core
// product with its dtype axis).
#include <cmath>
#include <limits>
#include <sstream>

#include "backend_ops/op_case.h"
#include "kernels/linear.h"

namespace ringscan::test::ops {
namespace {

constexpr float kSentinel = -12345.f;

// Every version multiplies the same fp32 values (bf16/f16 -> fp32 is exact);
// the reference sums in double, the others in fp32 in their own order. fp32
// rounding errors of K accumulated products are random-signed and grow like
// sqrt(K) (Higham, ch. 3): 4 * sqrt(K) * 2^-24 * sum_i |x_i w_i| per output
// (the worst case, K * 2^-24 * sum, is ~14x looser at K = 3136). A wrong index,
// panel offset or an accidental TF32 path (~2^-11 relative per product) is far
// above this. gemm_bf16's tensor cores may truncate inside a k-block: 4x that.
constexpr double kSqrtKUlps = 4.0;

// |x| |W|^T scaled to the bound above, one per output (leading dimension ld_y).
std::vector<float> sum_bound(const std::vector<float>& x, int64_t ld_x, int64_t rows, const TestWeight& w,
                             int64_t ld_y, double ulps) {
  std::vector<float> ax(x.size()), aw(w.values.size()), tol(rows * ld_y);
  for (size_t i = 0; i < x.size(); ++i) ax[i] = std::fabs(x[i]);
  for (size_t i = 0; i < aw.size(); ++i) aw[i] = std::fabs(w.values[i]);
  kernels::ref::linear(ax.data(), ld_x, rows, f32_view(aw.data(), w.rows, w.cols), tol.data(), ld_y);
  const double u = std::numeric_limits<float>::epsilon() / 2;
  for (float& t : tol) t = static_cast<float>(ulps * std::sqrt(double(w.cols)) * u * t + 1e-30);
  return tol;
}

struct GemmShape {
  int64_t rows, in, out, ld_x, ld_y;
};
std::string shape_text(const GemmShape& s) {
  std::ostringstream o;
  o << "rows " << s.rows << " in " << s.in << " out " << s.out << " ld_x " << s.ld_x << " ld_y " << s.ld_y;
  return o.str();
}

// y = x W^T (or y += x W^T onto -2 with `accumulate`, cuda::linear_accumulate),
// strided x and y whose padding must keep its sentinel.
class LinearCase : public OpCase {
 public:
  LinearCase(GemmShape s, DType wt, bool accumulate) : s_(s), wt_(wt), acc_(accumulate) {}
  std::string describe() const override {
    return std::string(acc_ ? "y += x W^T, " : "") + shape_text(s_) + " weight " + dtype_name(wt_);
  }
  bool supports(const Backend& b) const override { return !acc_ || b.is_cuda(); }
  void setup(Memory& m) override {
    x_ = random_floats(s_.rows * s_.ld_x, 1);
    w_ = random_weight(wt_, s_.out, s_.in, 2);
    y0_.assign(s_.rows * s_.ld_y, kSentinel);
    if (acc_)
      for (int64_t r = 0; r < s_.rows; ++r)
        for (int64_t o = 0; o < s_.out; ++o) y0_[r * s_.ld_y + o] = -2.f;
    d_x_ = m.put(x_);
    d_w_ = m.weight(w_);
    d_y_ = m.put(y0_);
  }
  void run(Memory& m) override {
    if (acc_) {
#ifdef RINGSCAN_WITH_CUDA
      kernels::cuda::linear_accumulate(d_x_, s_.ld_x, s_.rows, d_w_, d_y_, s_.ld_y, m.stream());
#endif
      return;
    }
    RINGSCAN_OP(m, linear, d_x_, s_.ld_x, s_.rows, d_w_, d_y_, s_.ld_y);
  }
  ::testing::AssertionResult verify(Memory& m) override {
    std::vector<float> expect(y0_.size(), kSentinel);
    kernels::ref::linear(x_.data(), s_.ld_x, s_.rows, w_.view(), expect.data(), s_.ld_y);
    if (acc_)
      for (int64_t r = 0; r < s_.rows; ++r)
        for (int64_t o = 0; o < s_.out; ++o) expect[r * s_.ld_y + o] -= 2.f;
    const std::vector<float> tol = sum_bound(x_, s_.ld_x, s_.rows, w_, s_.ld_y, kSqrtKUlps + (acc_ ? 1 : 0));
    const std::vector<float> got = m.get(d_y_, y0_.size());
    const ::testing::AssertionResult pad = padding_untouched(got.data(), s_.ld_y, s_.rows, s_.out, kSentinel);
    if (!pad) return pad;
    return all_within(got.data(), s_.ld_y, expect.data(), s_.ld_y, tol.data(), s_.ld_y, s_.rows, s_.out);
  }
  double flops() const override { return 2.0 * s_.rows * s_.in * s_.out; }
  double bytes() const override {
    return 4.0 * s_.rows * s_.in + double(s_.in) * s_.out * dtype_size(wt_) + 4.0 * s_.rows * s_.out * (acc_ ? 2 : 1);
  }

 private:
  GemmShape s_;
  DType wt_;
  bool acc_;
  std::vector<float> x_, y0_;
  TestWeight w_;
  float *d_x_ = nullptr, *d_y_ = nullptr;
  WeightView d_w_;
};

// gemm_bf16 (cuda only): bf16 x and W on the tensor cores, fp32 accumulation.
// Its reference is ref::linear of the *rounded* x (rounded here with the same
// round-to-nearest-even) and the bf16 weight: products of two bf16 values are
// exact in fp32, so what remains is the fp32 accumulation (4x the bound above).
// Rounding x is checked too: against the unrounded x the difference is up to
// 2^-8 relative, far above this. Modes: x fp32 rounded into a whole workspace,
// into a 7-row one (several passes), or x given as bf16; y fp32, y += x W^T
// onto 0.5 (the epilogue's residual add), or y bf16 (one more rounding: 2^-8
// relative to |y|, plus 1e-3 absolute for outputs near zero).
class GemmBf16Case : public OpCase {
 public:
  enum class X { F32Whole, F32SevenRows, Bf16 };
  enum class Y { F32, Accumulate, Bf16 };
  GemmBf16Case(GemmShape s, X x, Y y) : s_(s), xm_(x), ym_(y) {}
  std::string describe() const override {
    const char* xs = xm_ == X::Bf16 ? "x bf16" : xm_ == X::F32Whole ? "x f32" : "x f32 in 7-row passes";
    const char* ys = ym_ == Y::F32 ? "y f32" : ym_ == Y::Accumulate ? "y += f32" : "y bf16";
    return std::string(xs) + ", " + ys + ", " + shape_text(s_);
  }
  bool supports(const Backend& b) const override { return b.is_cuda(); }
  bool on_tensor_cores() const override { return true; }
  void setup(Memory& m) override {
    x_ = random_floats(s_.rows * s_.ld_x, 3);
    xb_ = to_bf16(x_);
    xr_ = from_bf16(xb_);
    w_ = random_weight(DType::BF16, s_.out, s_.in, 4);
    d_w_ = m.weight(w_);
    d_x_ = xm_ == X::Bf16 ? static_cast<void*>(m.put(xb_)) : m.put(x_);
    if (ym_ == Y::Bf16) {
      d_y_ = m.put(std::vector<uint16_t>(s_.rows * s_.ld_y, kBf16Sentinel));
    } else {
      std::vector<float> y0(s_.rows * s_.ld_y, kSentinel);
      if (ym_ == Y::Accumulate)
        for (int64_t r = 0; r < s_.rows; ++r)
          for (int64_t o = 0; o < s_.out; ++o) y0[r * s_.ld_y + o] = 0.5f;
      d_y_ = m.put(y0);
    }
#ifdef RINGSCAN_WITH_CUDA
    const size_t full = kernels::cuda::gemm_bf16_workspace(xm_ == X::Bf16 ? DType::BF16 : DType::F32, s_.rows, s_.in);
    ws_ = m.workspace(xm_ == X::F32SevenRows ? size_t(7) * s_.in * 2 : full);
#endif
  }
  void run(Memory& m) override {
#ifdef RINGSCAN_WITH_CUDA
    kernels::cuda::gemm_bf16(d_x_, xm_ == X::Bf16 ? DType::BF16 : DType::F32, s_.ld_x, s_.rows, d_w_, d_y_,
                             ym_ == Y::Bf16 ? DType::BF16 : DType::F32, s_.ld_y, ym_ == Y::Accumulate, ws_, m.stream());
#endif
  }
  ::testing::AssertionResult verify(Memory& m) override {
    std::vector<float> expect(s_.rows * s_.ld_y, kSentinel);
    kernels::ref::linear(xr_.data(), s_.ld_x, s_.rows, w_.view(), expect.data(), s_.ld_y);
    if (ym_ == Y::Bf16) {
      // 1e-3 absolute more: outputs near zero carry the fp32 accumulation's error.
      return bf16_out_close(m.get(static_cast<const uint16_t*>(d_y_), expect.size()), expect, s_.rows, s_.out, s_.ld_y,
                            1e-3);
    }
    if (ym_ == Y::Accumulate)
      for (int64_t r = 0; r < s_.rows; ++r)
        for (int64_t o = 0; o < s_.out; ++o) expect[r * s_.ld_y + o] += 0.5f;
    const std::vector<float> tol =
        sum_bound(xr_, s_.ld_x, s_.rows, w_, s_.ld_y, 4 * kSqrtKUlps + (ym_ == Y::Accumulate ? 1 : 0));
    const std::vector<float> got = m.get(static_cast<const float*>(d_y_), expect.size());
    const ::testing::AssertionResult pad = padding_untouched(got.data(), s_.ld_y, s_.rows, s_.out, kSentinel);
    if (!pad) return pad;
    return all_within(got.data(), s_.ld_y, expect.data(), s_.ld_y, tol.data(), s_.ld_y, s_.rows, s_.out);
  }
  double flops() const override { return 2.0 * s_.rows * s_.in * s_.out; }
  double bytes() const override {
    const double y = ym_ == Y::Bf16 ? 2 : ym_ == Y::Accumulate ? 8 : 4;
    return double(s_.rows) * s_.in * (xm_ == X::Bf16 ? 2 : 4) + 2.0 * s_.in * s_.out + y * s_.rows * s_.out;
  }

 private:
  GemmShape s_;
  X xm_;
  Y ym_;
  std::vector<float> x_, xr_;
  std::vector<uint16_t> xb_;
  TestWeight w_;
  WeightView d_w_;
  void *d_x_ = nullptr, *d_y_ = nullptr;
  kernels::Workspace ws_;
};

// The GEMMs of one Nemotron-H block at the model's shapes: (rows, in, out).
std::vector<GemmShape> model_gemms(const PerfShapes& p) {
  const int64_t L = p.tokens, qkv = (p.q_heads + 2 * p.kv_heads) * p.head_dim;
  return {{L, p.hidden, p.in_proj, p.hidden, p.in_proj},           // Mamba in_proj
          {L, p.d_inner, p.hidden, p.d_inner, p.hidden},           // Mamba out_proj
          {L, p.hidden, qkv, p.hidden, qkv},                       // fused q/k/v
          {L, p.q_heads * p.head_dim, p.hidden, p.q_heads * p.head_dim, p.hidden},  // o_proj
          {L, p.hidden, p.intermediate, p.hidden, p.intermediate},  // MLP up
          {L, p.intermediate, p.hidden, p.intermediate, p.hidden}};  // MLP down
}

Cases linear_cases(const PerfShapes* p) {
  Cases c;
  if (p) {
    for (const GemmShape& s : model_gemms(*p)) add<LinearCase>(c, s, DType::BF16, false);
    return c;
  }
  // The decode path (few rows), several panels and a ragged last one (out not
  // a multiple of the panel height; for cuda's bf16/f16 panels of 16 Mi
  // elements, 6000 x 3136 is two), odd sizes, strided x / y.
  for (GemmShape s : {GemmShape{1, 1, 1, 1, 1}, GemmShape{1, 64, 33, 64, 33}, GemmShape{2, 300, 1000, 301, 1003},
                      GemmShape{4, 300, 1000, 300, 1000}, GemmShape{5, 300, 1000, 300, 1000},
                      GemmShape{37, 300, 1000, 310, 1000}, GemmShape{17, 4097, 100, 4097, 101},
                      GemmShape{64, 129, 257, 200, 300}, GemmShape{3, 3136, 517, 3136 * 2, 517},
                      GemmShape{3, 3136, 6000, 3136 * 2, 6001}})
    for (DType dt : kAllDTypes) add<LinearCase>(c, s, dt, false);
  add<LinearCase>(c, GemmShape{37, 300, 1000, 310, 1000}, DType::BF16, true);
  return c;
}

Cases gemm_bf16_cases(const PerfShapes* p) {
  using X = GemmBf16Case::X;
  using Y = GemmBf16Case::Y;
  Cases c;
  if (p) {
    for (const GemmShape& s : model_gemms(*p)) {
      add<GemmBf16Case>(c, s, X::Bf16, Y::F32);
      add<GemmBf16Case>(c, s, X::Bf16, Y::Bf16);
    }
    return c;
  }
  for (GemmShape s : {GemmShape{1, 64, 33, 64, 33}, GemmShape{37, 300, 1000, 310, 1000},
                      GemmShape{64, 3136, 1024, 3136, 1030}})
    for (X x : {X::F32Whole, X::F32SevenRows, X::Bf16})
      for (Y y : {Y::F32, Y::Accumulate, Y::Bf16}) add<GemmBf16Case>(c, s, x, y);
  return c;
}

}  // namespace

void add_linear_ops(std::vector<OpFamily>& f) {
  f.push_back({"linear", linear_cases});
  f.push_back({"gemm_bf16", gemm_bf16_cases});
}

}  // namespace ringscan::test::ops
