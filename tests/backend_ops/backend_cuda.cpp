// The CUDA backend: device memory, ops queued on a stream of its own.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "backend_ops/backend.h"
#include "kernels_cuda/cuda_test_util.h"

namespace ringscan::test::ops {
namespace {

using test::cuda_ok;

class CudaBackend final : public Backend {
 public:
  CudaBackend() {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess)
      why_ = std::string("no GPU (") + cudaGetErrorString(e) + ")";
    else if (count == 0)
      why_ = "no GPU (cudaGetDeviceCount returned 0)";
    else
      cuda_ok(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  }
  const char* name() const override { return "cuda"; }
  bool is_cuda() const override { return true; }
  std::string unavailable() const override { return why_; }
  void* alloc(size_t bytes) override {
    void* p = nullptr;
    cuda_ok(cudaMalloc(&p, bytes ? bytes : 1), "cudaMalloc");
    return p;
  }
  void release(void* p) override { cudaFree(p); }
  void upload(void* dst, const void* src, size_t bytes) override {
    cuda_ok(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), "upload");
    finish();
  }
  void download(void* dst, const void* src, size_t bytes) override {
    cuda_ok(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_), "download");
    finish();
  }
  // Also surfaces the asynchronous faults of the queued kernels here.
  void finish() override {
    cuda_ok(cudaStreamSynchronize(stream_), "stream");
    cuda_ok(cudaGetLastError(), "kernel");
  }
  kernels::GpuStream stream() const override { return stream_; }

 private:
  std::string why_;
  cudaStream_t stream_ = nullptr;
};

}  // namespace

Backend& cuda_backend() {
  static CudaBackend b;
  return b;
}

}  // namespace ringscan::test::ops
