// Next-token sampling (greedy, temperature, top-k, top-p, seeded draws) on
// every backend against the reference: the ids must be the reference's,
// bitwise. cpu computes the weights and sums them in the reference's order;
// cuda sums in another order, so its ids are exact where no decision lies
// within round-off of a boundary, which every case asserts for its inputs
// (sampling_ref_margin, kernels/sampling_test_util.h), whatever the backend:
// one case list that holds for all.
// cuda::sample takes host parameters and returns host ids (sampling.h): only
// the logits live in backend memory.
#include <cmath>
#include <sstream>

#include "backend_ops/op_case.h"
#include "kernels/sampling.h"
#include "kernels/sampling_test_util.h"

namespace ringscan::test::ops {
namespace {

using kernels::SamplingParams;

void sample_on(Memory& m, const float* logits, int64_t ld, int64_t rows, int64_t vocab, const SamplingParams* params,
               const uint64_t* stream, const uint64_t* step, int32_t* out) {
#ifdef RINGSCAN_WITH_CUDA
  if (m.cuda()) return kernels::cuda::sample(logits, ld, rows, vocab, params, stream, step, out);
#endif
  kernels::cpu::sample(logits, ld, rows, vocab, params, stream, step, out);
}

class SampleCase : public OpCase {
 public:
  enum class Kind { Mixed, Greedy, ManyTopPDraws };
  // device_form: on cuda, the graph-capturable form (sample_prepare on the
  // host, sample_rows from device rows into device ids on the case's stream).
  SampleCase(SamplingBatchCase c, Kind k, bool device_form = false) : c_(c), kind_(k), device_form_(device_form) {}
  std::string describe() const override {
    std::ostringstream o;
    o << (kind_ == Kind::Greedy ? "greedy with ties" : kind_ == Kind::Mixed ? "temperature/top-k/top-p mix"
                                                                           : "many top-p draws of one row")
      << ", rows " << c_.rows << " vocab " << c_.vocab << " ld " << c_.ld << " logits in +-" << c_.spread
      << (c_.quantized ? " quantized" : "") << (device_form_ ? " (device form)" : "");
    return o.str();
  }
  void setup(Memory& m) override {
    b_ = make_sampling_batch(c_);
    if (kind_ == Kind::Greedy) {
      for (int64_t r = 0; r < c_.rows; ++r) {
        float* row = b_.x.data() + r * c_.ld;
        if (r % 2 == 1 && c_.vocab > 3) {  // the maximum planted at three places
          const float mx = c_.spread + 0.5f;
          row[(r * 7919) % c_.vocab] = mx, row[(r * 104729) % c_.vocab] = mx, row[c_.vocab - 1] = mx;
        }
        b_.params[r].temperature = 0.f;  // top-k and top-p, still set, are ignored by greedy
      }
    }
    if (kind_ == Kind::ManyTopPDraws)  // one row, drawn again and again with top-p (deep cuts)
      for (int64_t r = 0; r < c_.rows; ++r) {
        SamplingParams& p = b_.params[r];
        p.temperature = 1.5f, p.top_p = 0.95f, p.seed = r, p.top_k = r % 3 == 0 ? c_.vocab / 3 : 0;
        b_.stream[r] = 3, b_.step[r] = r;
      }
    d_x_ = m.put(b_.x);
    got_.assign(c_.rows, -5);
#ifdef RINGSCAN_WITH_CUDA
    if (m.cuda() && device_form_) {
      std::vector<kernels::cuda::SampleRow> rows(c_.rows);
      kernels::cuda::sample_prepare(b_.params.data(), b_.stream.data(), b_.step.data(), c_.rows, c_.vocab, rows.data());
      d_rows_ = m.put(rows);
      d_out_ = m.put(got_);
    }
#endif
  }
  void run(Memory& m) override {
    // ManyTopPDraws: every row is the first row's logits (ld 0).
    const int64_t ld = kind_ == Kind::ManyTopPDraws ? 0 : c_.ld;
#ifdef RINGSCAN_WITH_CUDA
    if (d_rows_) return kernels::cuda::sample_rows(d_x_, ld, c_.rows, c_.vocab, d_rows_, d_out_, m.stream());
#endif
    sample_on(m, d_x_, ld, c_.rows, c_.vocab, b_.params.data(), b_.stream.data(), b_.step.data(), got_.data());
  }
  ::testing::AssertionResult verify(Memory& m) override {
    const int64_t ld = kind_ == Kind::ManyTopPDraws ? 0 : c_.ld;
    if (d_out_) got_ = m.get(d_out_, got_.size());
    for (int64_t r = 0; r < c_.rows; ++r) {
      const double margin =
          sampling_ref_margin(b_.x.data() + r * ld, c_.vocab, b_.params[r], b_.stream[r], b_.step[r]);
      if (!(margin > kSamplingMinMargin))
        return ::testing::AssertionFailure() << "row " << r << ": the test input is " << margin
                                             << " from a boundary; change the inputs";
    }
    std::vector<int32_t> want(c_.rows);
    kernels::ref::sample(b_.x.data(), ld, c_.rows, c_.vocab, b_.params.data(), b_.stream.data(), b_.step.data(),
                         want.data());
    for (int64_t r = 0; r < c_.rows; ++r)
      if (got_[r] != want[r])
        return ::testing::AssertionFailure() << "row " << r << ": id " << got_[r] << ", the reference's " << want[r];
    return ::testing::AssertionSuccess();
  }
  double bytes() const override { return 4.0 * c_.rows * c_.vocab; }

 private:
  SamplingBatchCase c_;
  Kind kind_;
  bool device_form_;
  SamplingBatch b_;
  float* d_x_ = nullptr;
#ifdef RINGSCAN_WITH_CUDA
  kernels::cuda::SampleRow* d_rows_ = nullptr;
#else
  void* d_rows_ = nullptr;
#endif
  int32_t* d_out_ = nullptr;
  std::vector<int32_t> got_;
};

Cases sample_cases(const PerfShapes* p) {
  using K = SampleCase::Kind;
  Cases c;
  if (p) {
    for (int64_t rows : {1, 64}) add<SampleCase>(c, SamplingBatchCase{rows, p->vocab, p->vocab, 8.f, false}, K::Mixed);
    return c;
  }
  for (SamplingBatchCase b : {SamplingBatchCase{8, 1, 1, 1.f, false}, SamplingBatchCase{64, 7, 9, 2.f, true},
                              SamplingBatchCase{40, 4096, 4096, 4.f, false}, SamplingBatchCase{24, 4099, 4099, 1.f, true},
                              SamplingBatchCase{32, 50000, 50003, 4.f, false}, SamplingBatchCase{16, 50000, 50000, 1.f, true},
                              SamplingBatchCase{16, 131072, 131072, 8.f, false}})
    add<SampleCase>(c, b, K::Mixed);
  for (int64_t V : {1, 7, 50000, 131072})
    for (bool quantized : {false, true}) add<SampleCase>(c, SamplingBatchCase{6, V, V + 5, 4.f, quantized}, K::Greedy);
  add<SampleCase>(c, SamplingBatchCase{60, 50000, 50000, 4.f, false}, K::ManyTopPDraws);
  // The device form (decode steps): the same ids from the same kernel.
  add<SampleCase>(c, SamplingBatchCase{24, 4099, 4099, 1.f, true}, K::Mixed, true);
  add<SampleCase>(c, SamplingBatchCase{6, 50000, 50005, 4.f, false}, K::Greedy, true);
  return c;
}

}  // namespace

void add_sampling_ops(std::vector<OpFamily>& f) { f.push_back({"sample", sample_cases}); }

}  // namespace ringscan::test::ops
