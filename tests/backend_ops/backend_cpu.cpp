// The CPU backend: host memory, ops run synchronously (OpenMP inside).
#include <cstdlib>
#include <cstring>
#include <new>

#include "backend_ops/backend.h"

namespace ringscan::test::ops {
namespace {

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }
  bool is_cuda() const override { return false; }
  std::string unavailable() const override { return ""; }
  void* alloc(size_t bytes) override {
    // 64-byte aligned like the engine's buffers (the SIMD kernels' best case;
    // the tests' strided cases cover the unaligned ones).
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    if (!p) throw std::bad_alloc();
    return p;
  }
  void release(void* p) override { std::free(p); }
  void upload(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void download(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void finish() override {}
};

}  // namespace

Backend& cpu_backend() {
  static CpuBackend b;
  return b;
}

const std::vector<Backend*>& backends() {
#ifdef RINGSCAN_WITH_CUDA
  static const std::vector<Backend*> all = {&cpu_backend(), &cuda_backend()};
#else
  static const std::vector<Backend*> all = {&cpu_backend()};
#endif
  return all;
}

}  // namespace ringscan::test::ops
