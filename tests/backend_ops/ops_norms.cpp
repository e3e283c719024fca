// rmsnorm and Mamba's gated RMSNorm, with fp32 out (separate or in place) and
// bf16 out (the CUDA engine's GEMM inputs, cuda::*_to).
#include <cmath>
#include <sstream>

#include "backend_ops/op_case.h"
#include "kernels/gated_rmsnorm.h"
#include "kernels/rmsnorm.h"

namespace ringscan::test::ops {
namespace {


// The fast versions sum squares in fp32 (relative error <= ~(dim/16 + 4) * 2^-24
// on the CPU's SIMD lanes, ~(dim/256 + 8) * 2^-24 on the GPU: < 1e-5 for
// dim <= 12544), halved by the square root, then a few roundings of the
// products; the references work in double. A wrong row, group or weight index
// is an O(1) relative error. A bf16 output is the fp32 result rounded once:
// 2^-8 relative more.
constexpr double kRtol = 1e-5, kAtol = 1e-7;

enum class Out { Separate, InPlace, Bf16 };
const char* out_name(Out o) { return o == Out::Separate ? "out" : o == Out::InPlace ? "in place" : "bf16 out"; }
double out_rtol(Out o) { return kRtol + (o == Out::Bf16 ? std::ldexp(1.0, -8) : 0.0); }

// out as fp32 values, whatever dtype the case wrote.
std::vector<float> read_out(Memory& m, const void* p, size_t n, Out o) {
  if (o == Out::Bf16) return from_bf16(m.get(static_cast<const uint16_t*>(p), n));
  return m.get(static_cast<const float*>(p), n);
}

class RmsnormCase : public OpCase {
 public:
  RmsnormCase(int64_t rows, int64_t dim, DType wt, Out out) : rows_(rows), dim_(dim), wt_(wt), out_(out) {}
  std::string describe() const override {
    std::ostringstream s;
    s << out_name(out_) << ", rows " << rows_ << " dim " << dim_ << " weight " << dtype_name(wt_);
    return s.str();
  }
  bool supports(const Backend& b) const override { return out_ != Out::Bf16 || b.is_cuda(); }
  void setup(Memory& m) override {
    // Inputs of a wide range of scale, as a residual stream has.
    x_ = random_floats(rows_ * dim_, 51, -30.f, 30.f);
    w_ = random_weight(wt_, 1, dim_, 52, 0.5f, 1.5f);
    d_x_ = m.put(x_);
    d_w_ = m.weight(w_);
    d_out_ = out_ == Out::InPlace ? static_cast<void*>(d_x_) : m.bytes(x_.size() * 4);
  }
  void run(Memory& m) override {
    if (out_ == Out::Bf16) {
#ifdef RINGSCAN_WITH_CUDA
      kernels::cuda::rmsnorm_to(d_x_, rows_, dim_, d_w_, 1e-5f, d_out_, DType::BF16, m.stream());
#endif
      return;
    }
    RINGSCAN_OP(m, rmsnorm, d_x_, rows_, dim_, d_w_, 1e-5f, static_cast<float*>(d_out_));
  }
  ::testing::AssertionResult verify(Memory& m) override {
    std::vector<float> expect(x_.size());
    kernels::ref::rmsnorm(x_.data(), rows_, dim_, w_.view(), 1e-5f, expect.data());
    return all_close(read_out(m, d_out_, x_.size(), out_), expect, kAtol, out_rtol(out_));
  }
  double bytes() const override {
    return double(rows_) * dim_ * (4 + (out_ == Out::Bf16 ? 2 : 4)) + double(dim_) * dtype_size(wt_);
  }

 private:
  int64_t rows_, dim_;
  DType wt_;
  Out out_;
  std::vector<float> x_;
  TestWeight w_;
  float* d_x_ = nullptr;
  WeightView d_w_;
  void* d_out_ = nullptr;
};

// Mamba's gated norm: z is a column slice (ld_z) of in_proj's output.
// Same bounds as rmsnorm plus silu(z) in fp32 (a few ulp).
class GatedRmsnormCase : public OpCase {
 public:
  GatedRmsnormCase(int64_t rows, int64_t dim, int64_t group, int64_t ld_z, DType wt, Out out)
      : rows_(rows), dim_(dim), group_(group), ld_z_(ld_z), wt_(wt), out_(out) {}
  std::string describe() const override {
    std::ostringstream s;
    s << out_name(out_) << ", rows " << rows_ << " dim " << dim_ << " group " << group_ << " ld_z " << ld_z_
      << " weight " << dtype_name(wt_);
    return s.str();
  }
  bool supports(const Backend& b) const override { return out_ != Out::Bf16 || b.is_cuda(); }
  void setup(Memory& m) override {
    y_ = random_floats(rows_ * dim_, 61, -4.f, 4.f);
    z_ = random_floats(rows_ * ld_z_, 62, -6.f, 6.f);
    w_ = random_weight(wt_, 1, dim_, 63, 0.5f, 1.5f);
    d_y_ = m.put(y_);
    d_z_ = m.put(z_);
    d_w_ = m.weight(w_);
    d_out_ = out_ == Out::InPlace ? static_cast<void*>(d_y_) : m.bytes(y_.size() * 4);
  }
  void run(Memory& m) override {
    if (out_ == Out::Bf16) {
#ifdef RINGSCAN_WITH_CUDA
      kernels::cuda::gated_rmsnorm_to(d_y_, d_z_, ld_z_, rows_, dim_, group_, d_w_, 1e-5f, d_out_, DType::BF16,
                                      m.stream());
#endif
      return;
    }
    RINGSCAN_OP(m, gated_rmsnorm, d_y_, d_z_, ld_z_, rows_, dim_, group_, d_w_, 1e-5f, static_cast<float*>(d_out_));
  }
  ::testing::AssertionResult verify(Memory& m) override {
    std::vector<float> expect(y_.size());
    kernels::ref::gated_rmsnorm(y_.data(), z_.data(), ld_z_, rows_, dim_, group_, w_.view(), 1e-5f, expect.data());
    return all_close(read_out(m, d_out_, y_.size(), out_), expect, kAtol, out_rtol(out_));
  }
  double bytes() const override {
    return double(rows_) * dim_ * (4 + 4 + (out_ == Out::Bf16 ? 2 : 4)) + double(dim_) * dtype_size(wt_);
  }

 private:
  int64_t rows_, dim_, group_, ld_z_;
  DType wt_;
  Out out_;
  std::vector<float> y_, z_;
  TestWeight w_;
  float *d_y_ = nullptr, *d_z_ = nullptr;
  WeightView d_w_;
  void* d_out_ = nullptr;
};

Cases rmsnorm_cases(const PerfShapes* p) {
  Cases c;
  if (p) {
    add<RmsnormCase>(c, p->tokens, p->hidden, DType::BF16, Out::Separate);
    add<RmsnormCase>(c, p->tokens, p->hidden, DType::BF16, Out::Bf16);
    return c;
  }
  struct S { int64_t rows, dim; };
  for (S s : {S{1, 1}, S{1, 3136}, S{3, 7}, S{3, 17}, S{5, 1000}, S{17, 3136}, S{64, 3136}, S{5, 12544}})
    for (DType dt : kAllDTypes)
      for (Out o : {Out::Separate, Out::InPlace, Out::Bf16}) add<RmsnormCase>(c, s.rows, s.dim, dt, o);
  return c;
}

Cases gated_rmsnorm_cases(const PerfShapes* p) {
  Cases c;
  if (p) {
    for (Out o : {Out::Separate, Out::Bf16})
      add<GatedRmsnormCase>(c, p->tokens, p->d_inner, p->d_inner / p->groups, p->in_proj, DType::BF16, o);
    return c;
  }
  struct S { int64_t rows, dim, group, ld_z; };
  for (S s : {S{1, 8, 8, 8}, S{7, 12, 1, 12}, S{3, 30, 10, 33}, S{9, 640, 80, 1000}, S{40, 640, 80, 700},
              S{1, 7680, 960, 7680 * 2 + 256}, S{4, 7680, 960, 7680 * 2 + 2048 + 96}, S{3, 7680, 7680, 7680}})
    for (DType dt : kAllDTypes)
      for (Out o : {Out::Separate, Out::InPlace, Out::Bf16})
        add<GatedRmsnormCase>(c, s.rows, s.dim, s.group, s.ld_z, dt, o);
  return c;
}

}  // namespace

void add_norm_ops(std::vector<OpFamily>& f) {
  f.push_back({"rmsnorm", rmsnorm_cases});
  f.push_back({"gated_rmsnorm", gated_rmsnorm_cases});
}

}  // namespace ringscan::test::ops
