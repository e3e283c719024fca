// One test definition per op, run over every backend (backend.h):
//   - an op family ("rmsnorm", "gemm_bf16", ...) makes its cases: the test
//     cases (small and odd shapes, every dtype) or, given PerfShapes, the model's
//     shapes for the perf mode (bench/ops/bench_ops.cpp);
//   - a case puts its inputs on a backend (setup), runs the op there (run, as
//     often as a timer wants), and checks the outputs against the op's
//     plain-loop reference (verify, test mode only), with its tolerance and why;
//   - flops() and bytes() are what the perf mode divides by the time.
// test_backend_ops.cpp runs every family on every backend present; a case a
// backend does not implement (the bf16 tensor-core ops on cpu) says so in
// supports() and is listed, not silently passed.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backend_ops/backend.h"
#include "kernels/kernel_test_util.h"
#include "kernels/weight_view.h"

namespace ringscan::test::ops {

// Backend memory for one case, freed with it.
class Memory {
 public:
  explicit Memory(Backend& b) : b_(b) {}
  ~Memory();
  Memory(const Memory&) = delete;
  Memory& operator=(const Memory&) = delete;

  Backend& backend() const { return b_; }
  bool cuda() const { return b_.is_cuda(); }
  kernels::GpuStream stream() const { return b_.stream(); }

  void* bytes(size_t n);
  template <class T>
  T* put(const std::vector<T>& host) {
    T* p = static_cast<T*>(bytes(host.size() * sizeof(T)));
    b_.upload(p, host.data(), host.size() * sizeof(T));
    return p;
  }
  template <class T>
  std::vector<T> get(const T* p, size_t n) const {
    std::vector<T> host(n);
    b_.download(host.data(), p, n * sizeof(T));
    return host;
  }
  // A test weight's storage in its own dtype.
  WeightView weight(const TestWeight& w);
  kernels::Workspace workspace(size_t n) { return {bytes(n), n}; }

 private:
  Backend& b_;
  std::vector<void*> owned_;
};

class OpCase {
 public:
  virtual ~OpCase() = default;
  virtual std::string describe() const = 0;  // variant, shape and dtypes
  virtual bool supports(const Backend&) const { return true; }
  virtual void setup(Memory& m) = 0;
  virtual void run(Memory& m) = 0;
  virtual ::testing::AssertionResult verify(Memory& m) = 0;
  virtual double flops() const { return 0; }  // 0: a memory-bound op
  virtual bool on_tensor_cores() const { return false; }  // its roofline: the bf16 peak, else fp32
  virtual double bytes() const = 0;           // each input read once, each output written once
};
using Cases = std::vector<std::unique_ptr<OpCase>>;

// The model's shapes for the perf mode (bench_ops fills them from a preset).
struct PerfShapes {
  int64_t tokens = 0;
  int64_t hidden = 0, vocab = 0, intermediate = 0;
  int64_t mamba_heads = 0, mamba_head_dim = 0, state = 0, groups = 0, conv_kernel = 0, chunk = 0;
  int64_t d_inner = 0, conv_dim = 0, in_proj = 0;
  int64_t q_heads = 0, kv_heads = 0, head_dim = 0;
};

struct OpFamily {
  std::string op;
  // perf null: the test cases; otherwise the perf cases at those shapes.
  std::function<Cases(const PerfShapes* perf)> cases;
};
// Every op family, in the order the kernels README lists the ops.
const std::vector<OpFamily>& op_families();

// A bf16 output of a strided [rows, ld] matrix written over kBf16Sentinel:
// columns < cols within 2^-8 |expected| + atol of the fp32 expected values
// (one round-to-nearest of the fp32 result: bf16 has 8 significant bits), the
// padding columns still holding the sentinel (a NaN pattern no op writes).
inline constexpr uint16_t kBf16Sentinel = 0x7fc1;
::testing::AssertionResult bf16_out_close(const std::vector<uint16_t>& got, const std::vector<float>& expect,
                                          int64_t rows, int64_t cols, int64_t ld, double atol);

// Adds a case built in place: add<RmsnormCase>(cases, args...).
template <class C, class... A>
void add(Cases& cases, A&&... args) {
  cases.push_back(std::make_unique<C>(std::forward<A>(args)...));
}

// The same op on whichever backend m is: kernels::cpu::op(args...) or
// kernels::cuda::op(args..., stream) (the _ws form: args..., workspace, stream).
#ifdef RINGSCAN_WITH_CUDA
#define RINGSCAN_OP(m, op, ...)                                          \
  ((m).cuda() ? ::ringscan::kernels::cuda::op(__VA_ARGS__, (m).stream()) \
              : ::ringscan::kernels::cpu::op(__VA_ARGS__))
#define RINGSCAN_OP_WS(m, ws, op, ...)                                         \
  ((m).cuda() ? ::ringscan::kernels::cuda::op(__VA_ARGS__, (ws), (m).stream()) \
              : ::ringscan::kernels::cpu::op(__VA_ARGS__))
#else
#define RINGSCAN_OP(m, op, ...) ::ringscan::kernels::cpu::op(__VA_ARGS__)
#define RINGSCAN_OP_WS(m, ws, op, ...) ::ringscan::kernels::cpu::op(__VA_ARGS__)
#endif

// Families, one function per source file (ops_<name>.cpp).
void add_norm_ops(std::vector<OpFamily>& f);
void add_pointwise_ops(std::vector<OpFamily>& f);
void add_sequence_ops(std::vector<OpFamily>& f);
void add_linear_ops(std::vector<OpFamily>& f);
void add_attention_ops(std::vector<OpFamily>& f);
void add_ssd_ops(std::vector<OpFamily>& f);
void add_sampling_ops(std::vector<OpFamily>& f);
void add_decode_ops(std::vector<OpFamily>& f);

}  // namespace ringscan::test::ops
