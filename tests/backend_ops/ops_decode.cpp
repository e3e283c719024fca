// The batched decode step's ops: the conv update over each sequence's own
// history, the KV append and the decode attention over each sequence's own
// cache (pointer arrays, padding rows marked by null pointers), and RoPE at
// per-row positions.
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>

#include "backend_ops/op_case.h"
#include "kernels/attention_decode.h"
#include "kernels/causal_conv1d.h"
#include "kernels/kv_append.h"
#include "kernels/rope.h"

namespace ringscan::test::ops {
namespace {

// A padding row every `pad_every` rows (0: none).
bool is_pad(int64_t b, int pad_every) { return pad_every > 0 && b % pad_every == pad_every - 1; }

// Conv update: the output as causal_conv1d's (same sums, same 1e-5 bound, see
// ops_sequence.cpp), and the shifted histories exactly (they are copies).
// Padding rows: zeros out, their (unrelated) buffer untouched.
class ConvUpdateCase : public OpCase {
 public:
  ConvUpdateCase(int64_t batch, int64_t channels, int64_t K, int64_t ld_x, int pad_every, DType wt)
      : batch_(batch), C_(channels), K_(K), ld_x_(ld_x), pad_(pad_every), wt_(wt) {}
  std::string describe() const override {
    std::ostringstream s;
    s << "batch " << batch_ << " channels " << C_ << " K " << K_ << " ld_x " << ld_x_ << " pad every " << pad_
      << " weight " << dtype_name(wt_);
    return s.str();
  }
  void setup(Memory& m) override {
    x_ = random_floats(batch_ * ld_x_, 91, -2.f, 2.f);
    w_ = random_weight(wt_, C_, K_, 92, -0.5f, 0.5f);
    b_ = random_weight(wt_, 1, C_, 93, -0.5f, 0.5f);
    const int64_t hn = std::max<int64_t>(K_ - 1, 1) * C_;
    for (int64_t b = 0; b < batch_; ++b) {
      hist_.push_back(random_floats(hn, 100 + b, -2.f, 2.f));
      d_hist_.push_back(m.put(hist_.back()));
      ptrs_.push_back(is_pad(b, pad_) ? nullptr : d_hist_.back());
    }
    d_ptrs_ = m.put(ptrs_);
    d_x_ = m.put(x_);
    d_w_ = m.weight(w_);
    d_b_ = m.weight(b_);
    d_out_ = static_cast<float*>(m.bytes(batch_ * C_ * 4));
  }
  void run(Memory& m) override {
    RINGSCAN_OP(m, causal_conv1d_update, d_x_, ld_x_, batch_, C_, d_ptrs_, d_w_, d_b_, true, d_out_);
  }
  ::testing::AssertionResult verify(Memory& m) override {
    std::vector<std::vector<float>> hist = hist_;
    std::vector<float*> ptrs;
    for (int64_t b = 0; b < batch_; ++b) ptrs.push_back(is_pad(b, pad_) ? nullptr : hist[b].data());
    std::vector<float> expect(batch_ * C_);
    kernels::ref::causal_conv1d_update(x_.data(), ld_x_, batch_, C_, ptrs.data(), w_.view(), b_.view(), true,
                                       expect.data());
    for (int64_t b = 0; b < batch_; ++b)
      if (m.get(d_hist_[b], hist[b].size()) != hist[b])
        return ::testing::AssertionFailure() << "history of sequence " << b << " is not the reference's";
    return all_close(m.get(d_out_, expect.size()), expect, 1e-5, 1e-5);
  }
  double bytes() const override { return 4.0 * batch_ * C_ * (2 * K_ + 1); }

 private:
  int64_t batch_, C_, K_, ld_x_;
  int pad_;
  DType wt_;
  std::vector<float> x_;
  std::vector<std::vector<float>> hist_;
  std::vector<float*> d_hist_, ptrs_;
  float* const* d_ptrs_ = nullptr;
  float *d_x_ = nullptr, *d_out_ = nullptr;
  TestWeight w_, b_;
  WeightView d_w_, d_b_;
};

// KV append: the caches byte for byte the reference's (fp32 copies, or one
// round-to-nearest-even to bf16), every other row untouched.
class KvAppendCase : public OpCase {
 public:
  KvAppendCase(int64_t batch, int64_t width, int64_t ld_new, int pad_every, DType dt)
      : batch_(batch), width_(width), ld_(ld_new), pad_(pad_every), dt_(dt) {}
  std::string describe() const override {
    std::ostringstream s;
    s << "batch " << batch_ << " width " << width_ << " ld " << ld_ << " pad every " << pad_ << " cache "
      << dtype_name(dt_);
    return s.str();
  }
  void setup(Memory& m) override {
    kn_ = random_floats(batch_ * ld_, 11, -3.f, 3.f);
    vn_ = random_floats(batch_ * ld_, 12, -3.f, 3.f);
    const size_t cache_bytes = kRows * width_ * dtype_size(dt_);
    for (int64_t b = 0; b < batch_; ++b) {
      rows_.push_back(static_cast<int32_t>((b * 3 + 1) % kRows));
      for (int kv = 0; kv < 2; ++kv) {
        std::vector<uint8_t> init(cache_bytes);
        for (size_t i = 0; i < init.size(); ++i) init[i] = static_cast<uint8_t>(i * 7 + b * 13 + kv);
        init_[kv].push_back(init);
        void* d = m.put(init);
        d_cache_[kv].push_back(d);
        ptrs_[kv].push_back(is_pad(b, pad_) ? nullptr : d);
      }
    }
    d_kn_ = m.put(kn_), d_vn_ = m.put(vn_), d_rows_ = m.put(rows_);
    d_kp_ = m.put(ptrs_[0]), d_vp_ = m.put(ptrs_[1]);
  }
  void run(Memory& m) override {
    RINGSCAN_OP(m, kv_append, d_kn_, d_vn_, ld_, batch_, width_, d_kp_, d_vp_, d_rows_, dt_);
  }
  ::testing::AssertionResult verify(Memory& m) override {
    std::vector<uint8_t> want[2] = {}, got;
    std::vector<std::vector<uint8_t>> caches[2] = {init_[0], init_[1]};
    std::vector<void*> hp[2];
    for (int64_t b = 0; b < batch_; ++b)
      for (int kv = 0; kv < 2; ++kv) hp[kv].push_back(is_pad(b, pad_) ? nullptr : caches[kv][b].data());
    kernels::ref::kv_append(kn_.data(), vn_.data(), ld_, batch_, width_, hp[0].data(), hp[1].data(), rows_.data(), dt_);
    for (int64_t b = 0; b < batch_; ++b)
      for (int kv = 0; kv < 2; ++kv)
        if (m.get(static_cast<const uint8_t*>(d_cache_[kv][b]), caches[kv][b].size()) != caches[kv][b])
          return ::testing::AssertionFailure() << (kv ? "V" : "K") << " cache of sequence " << b
                                               << " is not the reference's";
    return ::testing::AssertionSuccess();
  }
  double bytes() const override { return 2.0 * batch_ * width_ * (4 + dtype_size(dt_)); }

 private:
  static constexpr int64_t kRows = 5;
  int64_t batch_, width_, ld_;
  int pad_;
  DType dt_;
  std::vector<float> kn_, vn_;
  std::vector<int32_t> rows_;
  std::vector<std::vector<uint8_t>> init_[2];
  std::vector<void*> d_cache_[2], ptrs_[2];
  float *d_kn_ = nullptr, *d_vn_ = nullptr;
  int32_t* d_rows_ = nullptr;
  void* const* d_kp_ = nullptr;
  void* const* d_vp_ = nullptr;
};

// Decode attention against attention_block's reference over each sequence's
// keys. The caches hold NaN past len (a read beyond it shows). fp32 dot
// products of head_dim <= 128 terms of |q k| <= 1 and sums of <= 300 weights
// in fp32 against double: the output acc / l within 2e-5, the log-sum-exp
// m + log l within 1e-5 relative (+ 1e-5); a wrong key range, head mapping or
// split merge is an O(0.1) error. Padding rows and empty caches must be the
// exact empty state. cuda runs with the workspace (split over keys, merged by
// LSE) or without (one split).
class AttentionDecodeCase : public OpCase {
 public:
  AttentionDecodeCase(kernels::AttentionShape s, std::vector<int32_t> lens, int pad_every, DType dt, bool split)
      : s_(s), lens_(std::move(lens)), pad_(pad_every), dt_(dt), split_(split) {}
  std::string describe() const override {
    std::ostringstream o;
    o << "heads " << s_.q_heads << "/" << s_.kv_heads << " head_dim " << s_.head_dim << " lens";
    for (int32_t n : lens_) o << " " << n;
    o << " pad every " << pad_ << " cache " << dtype_name(dt_) << (split_ ? " split-K" : " one split");
    return o.str();
  }
  void setup(Memory& m) override {
    const int64_t B = batch(), kvd = s_.kv_heads * s_.head_dim, qd = s_.q_heads * s_.head_dim;
    ld_q_ = qd + 3;
    q_ = random_floats(B * ld_q_, 21);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t cap = lens_[b] + 3;
      for (int kv = 0; kv < 2; ++kv) {
        std::vector<float> c = random_floats(cap * kvd, 200 + 2 * b + kv);
        for (int64_t i = lens_[b] * kvd; i < cap * kvd; ++i) c[i] = std::numeric_limits<float>::quiet_NaN();
        void* d;
        if (dt_ == DType::BF16) {
          std::vector<uint16_t> h = to_bf16(c);
          c = from_bf16(h);
          d = m.put(h);
        } else {
          d = m.put(c);
        }
        host_[kv].push_back(c);
        ptrs_[kv].push_back(is_pad(b, pad_) ? nullptr : d);
      }
    }
    d_q_ = m.put(q_), d_len_ = m.put(lens_);
    d_kp_ = m.put(ptrs_[0]), d_vp_ = m.put(ptrs_[1]);
    d_acc_ = static_cast<float*>(m.bytes(B * qd * 4));
    d_m_ = static_cast<float*>(m.bytes(B * s_.q_heads * 4));
    d_l_ = static_cast<float*>(m.bytes(B * s_.q_heads * 4));
#ifdef RINGSCAN_WITH_CUDA
    if (m.cuda() && split_) ws_ = m.workspace(kernels::attention_decode_workspace(s_, B));
#endif
  }
  void run(Memory& m) override {
    RINGSCAN_OP_WS(m, ws_, attention_decode, s_, d_q_, ld_q_, batch(), d_kp_, d_vp_, dt_, d_len_, scale(), d_acc_, d_m_,
                   d_l_);
  }
  ::testing::AssertionResult verify(Memory& m) override {
    const int64_t B = batch(), D = s_.head_dim, qd = s_.q_heads * D, kvd = s_.kv_heads * D;
    const std::vector<float> acc = m.get(d_acc_, B * qd), mm = m.get(d_m_, B * s_.q_heads),
                             ll = m.get(d_l_, B * s_.q_heads);
    for (int64_t b = 0; b < B; ++b) {
      std::vector<float> ea(qd), em(s_.q_heads), el(s_.q_heads);
      kernels::ref::attention_init(s_, 1, ea.data(), em.data(), el.data());
      if (!is_pad(b, pad_) && lens_[b] > 0)
        kernels::ref::attention_block(s_, q_.data() + b * ld_q_, ld_q_, 1, lens_[b] - 1, host_[0][b].data(), kvd,
                                      host_[1][b].data(), kvd, lens_[b], 0, scale(), false, ea.data(), em.data(),
                                      el.data());
      for (int64_t h = 0; h < s_.q_heads; ++h) {
        const int64_t r = b * s_.q_heads + h;
        if (em[h] == -INFINITY) {
          bool empty = mm[r] == -INFINITY && ll[r] == 0.f;
          for (int64_t d = 0; d < D; ++d) empty = empty && acc[r * D + d] == 0.f;
          if (!empty) return ::testing::AssertionFailure() << "sequence " << b << " head " << h << ": not the empty state";
          continue;
        }
        const double lse = mm[r] + std::log(double(ll[r])), want_lse = em[h] + std::log(double(el[h]));
        if (!(std::fabs(lse - want_lse) <= 1e-5 * std::fabs(want_lse) + 1e-5))
          return ::testing::AssertionFailure() << "sequence " << b << " head " << h << ": log-sum-exp " << lse
                                               << ", the reference's " << want_lse;
        for (int64_t d = 0; d < D; ++d) {
          const double got = acc[r * D + d] / double(ll[r]), want = ea[h * D + d] / double(el[h]);
          if (!(std::fabs(got - want) <= 2e-5))
            return ::testing::AssertionFailure() << "sequence " << b << " head " << h << " dim " << d << ": " << got
                                                 << ", the reference's " << want;
        }
      }
    }
    return ::testing::AssertionSuccess();
  }
  double bytes() const override {
    double keys = 0;
    for (int32_t n : lens_) keys += n;
    return keys * 2 * s_.kv_heads * s_.head_dim * dtype_size(dt_);
  }
  double flops() const override {
    double keys = 0;
    for (int32_t n : lens_) keys += n;
    return 4.0 * keys * s_.q_heads * s_.head_dim;
  }

 private:
  int64_t batch() const { return static_cast<int64_t>(lens_.size()); }
  float scale() const { return 1.f / std::sqrt(static_cast<float>(s_.head_dim)); }
  kernels::AttentionShape s_;
  std::vector<int32_t> lens_;
  int pad_;
  DType dt_;
  bool split_;
  int64_t ld_q_ = 0;
  std::vector<float> q_;
  std::vector<std::vector<float>> host_[2];
  std::vector<const void*> ptrs_[2];
  const void* const* d_kp_ = nullptr;
  const void* const* d_vp_ = nullptr;
  float *d_q_ = nullptr, *d_acc_ = nullptr, *d_m_ = nullptr, *d_l_ = nullptr;
  int32_t* d_len_ = nullptr;
  kernels::Workspace ws_;
};

#ifdef RINGSCAN_WITH_CUDA
// cuda::store_rows (the prefill form of kv_append): fp32 copies or one
// round-to-nearest-even to bf16 (f32_to_bf16), byte for byte; the padding
// columns of out untouched.
class StoreRowsCase : public OpCase {
 public:
  StoreRowsCase(int64_t rows, int64_t width, int64_t ld_x, int64_t ld_out, DType dt)
      : rows_(rows), width_(width), ld_x_(ld_x), ld_out_(ld_out), dt_(dt) {}
  std::string describe() const override {
    std::ostringstream o;
    o << "rows " << rows_ << " width " << width_ << " ld_x " << ld_x_ << " ld_out " << ld_out_ << " " << dtype_name(dt_);
    return o.str();
  }
  bool supports(const Backend& b) const override { return b.is_cuda(); }
  void setup(Memory& m) override {
    x_ = random_floats(rows_ * ld_x_, 41, -3.f, 3.f);
    init_.assign(rows_ * ld_out_ * dtype_size(dt_), 0xAB);
    d_x_ = m.put(x_), d_out_ = m.put(init_);
  }
  void run(Memory& m) override {
    kernels::cuda::store_rows(d_x_, ld_x_, rows_, width_, d_out_, ld_out_, dt_, m.stream());
  }
  ::testing::AssertionResult verify(Memory& m) override {
    std::vector<uint8_t> want = init_;
    for (int64_t r = 0; r < rows_; ++r)
      for (int64_t c = 0; c < width_; ++c) {
        const float v = x_[r * ld_x_ + c];
        if (dt_ == DType::F32)
          std::memcpy(want.data() + (r * ld_out_ + c) * 4, &v, 4);
        else {
          const uint16_t h = f32_to_bf16(v);
          std::memcpy(want.data() + (r * ld_out_ + c) * 2, &h, 2);
        }
      }
    if (m.get(static_cast<const uint8_t*>(d_out_), want.size()) != want)
      return ::testing::AssertionFailure() << "rows are not kv_append's";
    return ::testing::AssertionSuccess();
  }
  double bytes() const override { return double(rows_) * width_ * (4 + dtype_size(dt_)); }

 private:
  int64_t rows_, width_, ld_x_, ld_out_;
  DType dt_;
  std::vector<float> x_;
  std::vector<uint8_t> init_;
  float* d_x_ = nullptr;
  void* d_out_ = nullptr;
};

// cuda::rope_at: each row rotated at its own position = ref::rope of that
// row alone (the 1e-6 bound of RopeCase).
class RopeAtCase : public OpCase {
 public:
  RopeAtCase(std::vector<int64_t> pos, int64_t heads, int64_t head_dim, int64_t rotary, int64_t ld)
      : pos_(std::move(pos)), heads_(heads), hd_(head_dim), rot_(rotary), ld_(ld) {}
  std::string describe() const override {
    std::ostringstream o;
    o << "rows " << pos_.size() << " heads " << heads_ << " head_dim " << hd_ << " rotary " << rot_;
    return o.str();
  }
  bool supports(const Backend& b) const override { return b.is_cuda(); }
  void setup(Memory& m) override {
    x_ = random_floats(pos_.size() * ld_, 31);
    d_x_ = m.put(x_), d_pos_ = m.put(pos_);
  }
  void run(Memory& m) override {
    kernels::cuda::rope_at(d_x_, ld_, static_cast<int64_t>(pos_.size()), heads_, hd_, rot_, d_pos_, 10000.f, m.stream());
  }
  ::testing::AssertionResult verify(Memory& m) override {
    std::vector<float> expect = x_;
    for (size_t r = 0; r < pos_.size(); ++r)
      kernels::ref::rope(expect.data() + r * ld_, ld_, 1, heads_, hd_, rot_, pos_[r], 10000.f);
    return all_close(m.get(d_x_, x_.size()), expect, 1e-6, 0);
  }
  double bytes() const override { return 8.0 * pos_.size() * heads_ * rot_; }

 private:
  std::vector<int64_t> pos_;
  int64_t heads_, hd_, rot_, ld_;
  std::vector<float> x_;
  float* d_x_ = nullptr;
  int64_t* d_pos_ = nullptr;
};
#endif

Cases conv_update_cases(const PerfShapes* p) {
  Cases c;
  if (p) {
    for (int64_t b : {1, 64, 256}) add<ConvUpdateCase>(c, b, p->conv_dim, p->conv_kernel, p->in_proj, 0, DType::BF16);
    return c;
  }
  struct S { int64_t batch, channels, K, ld_x; int pad; };
  for (S s : {S{1, 1, 1, 1, 0}, S{1, 64, 4, 64, 0}, S{3, 37, 4, 40, 0}, S{5, 300, 4, 512, 2}, S{4, 33, 2, 33, 3},
              S{2, 50, 7, 60, 0}, S{7, 9728, 4, 9728 * 2, 3}})
    for (DType dt : {DType::F32, DType::BF16}) add<ConvUpdateCase>(c, s.batch, s.channels, s.K, s.ld_x, s.pad, dt);
  return c;
}

Cases kv_append_cases(const PerfShapes* p) {
  Cases c;
  if (p) {
    const int64_t kvd = p->kv_heads * p->head_dim;
    for (int64_t b : {1, 64, 256}) add<KvAppendCase>(c, b, kvd, (p->q_heads + 2 * p->kv_heads) * p->head_dim, 0, DType::BF16);
    return c;
  }
  for (DType dt : {DType::F32, DType::BF16}) {
    add<KvAppendCase>(c, 1, 1, 1, 0, dt);
    add<KvAppendCase>(c, 6, 256, 300, 3, dt);
    add<KvAppendCase>(c, 9, 1024, 6144, 0, dt);
  }
  return c;
}

Cases attention_decode_cases(const PerfShapes* p) {
  Cases c;
  if (p) {
    const kernels::AttentionShape s{p->q_heads, p->kv_heads, p->head_dim};
    for (int64_t b : {1, 64, 256})
      add<AttentionDecodeCase>(c, s, std::vector<int32_t>(b, static_cast<int32_t>(p->tokens)), 0, DType::BF16, true);
    return c;
  }
  struct S { kernels::AttentionShape s; std::vector<int32_t> lens; int pad; };
  const std::vector<S> shapes = {
      {{1, 1, 1}, {1}, 0},
      {{4, 2, 16}, {1, 5, 33, 0, 70}, 0},                  // an empty cache, lengths around the tile
      {{5, 1, 24}, {300, 2, 64}, 2},                       // GQA 5:1, a padding row
      {{40, 8, 128}, {129, 1}, 0},                         // the model's heads
      {{6, 3, 8}, std::vector<int32_t>(20, 9), 7},         // a larger batch: fewer splits
      {{130, 1, 4}, {40, 3}, 0}};                          // more query heads per KV head than threads
  for (const S& s : shapes)
    for (DType dt : {DType::F32, DType::BF16})
      for (bool split : {false, true}) add<AttentionDecodeCase>(c, s.s, s.lens, s.pad, dt, split);
  return c;
}

}  // namespace

void add_decode_ops(std::vector<OpFamily>& f) {
  f.push_back({"causal_conv1d_update", conv_update_cases});
  f.push_back({"kv_append", kv_append_cases});
  f.push_back({"attention_decode", attention_decode_cases});
#ifdef RINGSCAN_WITH_CUDA
  f.push_back({"store_rows", [](const PerfShapes* p) {
                 Cases c;
                 if (p) return c;
                 for (DType dt : {DType::F32, DType::BF16}) {
                   add<StoreRowsCase>(c, 5, 256, 1280, 256, dt);
                   add<StoreRowsCase>(c, 3, 7, 9, 8, dt);
                 }
                 return c;
               }});
  f.push_back({"rope_at", [](const PerfShapes* p) {
                 Cases c;
                 if (p) return c;
                 add<RopeAtCase>(c, std::vector<int64_t>{0, 7, 123456, 3}, 3, 64, 32, 3 * 64 + 5);
                 add<RopeAtCase>(c, std::vector<int64_t>{1 << 20, 5}, 40, 128, 128, 40 * 128);
                 return c;
               }});
#endif
}

}  // namespace ringscan::test::ops
