#include "model/device_buffer.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>

#include "util/error.h"

namespace ringscan {
namespace {

std::atomic<uint64_t> g_peak_used{0};

void sample_peak() {
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) return;
  const uint64_t used = total_b - free_b;
  uint64_t prev = g_peak_used.load();
  while (used > prev && !g_peak_used.compare_exchange_weak(prev, used)) {
  }
}

std::string gib(uint64_t b) { return std::to_string(b / double(1ull << 30)).substr(0, 5) + " GiB"; }

}  // namespace

DeviceBuffer::DeviceBuffer(uint64_t bytes, const std::string& what) : bytes_(bytes) {
  if (bytes == 0) return;
  const cudaError_t e = cudaMalloc(&p_, bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error state of a failed allocation
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    p_ = nullptr;
    throw Error("the GPU has no room for " + what + " (" + gib(bytes) + " asked, " + gib(free_b) + " free of " +
                gib(total_b) + "): " + cudaGetErrorString(e));
  }
  sample_peak();
}

DeviceBuffer::~DeviceBuffer() {
  if (p_) cudaFree(p_);
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  std::swap(p_, o.p_);
  std::swap(bytes_, o.bytes_);
  return *this;
}

void DeviceBuffer::zero() {
  if (!p_) return;
  const cudaError_t e = cudaMemsetAsync(p_, 0, bytes_, 0);
  if (e != cudaSuccess) throw Error(std::string("cudaMemsetAsync failed: ") + cudaGetErrorString(e));
}

void device_to_host(float* host, const float* device, int64_t n) {
  if (n <= 0) return;
  const cudaError_t e = cudaMemcpy(host, device, n * sizeof(float), cudaMemcpyDeviceToHost);
  if (e != cudaSuccess) throw Error(std::string("copying results from the GPU failed: ") + cudaGetErrorString(e));
}

DeviceMemory device_memory() {
  sample_peak();
  size_t free_b = 0, total_b = 0;
  cudaMemGetInfo(&free_b, &total_b);
  return {free_b, total_b, g_peak_used.load()};
}

}  // namespace ringscan
