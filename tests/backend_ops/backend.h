// The backends an op can run on, for the op tests and their perf mode
// (tests/backend_ops, in the spirit of ggml's test-backend-ops): one memory
// interface, so that one test definition per op runs on every backend built
// in, and the CPU and CUDA case lists cannot drift apart.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "kernels/gpu_op.h"

namespace ringscan::test::ops {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;  // "cpu", "cuda"
  virtual bool is_cuda() const = 0;
  // Why this backend cannot run here (e.g. "no CUDA device"); "" when it can.
  virtual std::string unavailable() const = 0;
  // Memory the backend's ops read and write (host memory for cpu, device memory for cuda).
  virtual void* alloc(size_t bytes) = 0;
  virtual void release(void* p) = 0;
  virtual void upload(void* dst, const void* src, size_t bytes) = 0;
  // Waits for the queued work first.
  virtual void download(void* dst, const void* src, size_t bytes) = 0;
  // Waits for the queued work (a perf mode's timer stops after it).
  virtual void finish() = 0;
  // The stream every CUDA op of a case is given: a stream of its own, not the
  // legacy default stream, so that an op that ignores its stream shows.
  virtual kernels::GpuStream stream() const { return nullptr; }
};

// Every backend built into this program: cpu, then cuda in CUDA builds.
const std::vector<Backend*>& backends();
Backend& cpu_backend();
#ifdef RINGSCAN_WITH_CUDA
Backend& cuda_backend();  // backend_cuda.cpp
#endif

}  // namespace ringscan::test::ops
