// One owning device allocation (CUDA builds). Declared without CUDA headers so
// that host-only code can hold one; allocation failures name what was asked.
#pragma once
#include <cstdint>
#include <string>

namespace ringscan {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  // `what` names the allocation in the out-of-memory message.
  DeviceBuffer(uint64_t bytes, const std::string& what);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(o.p_), bytes_(o.bytes_) { o.p_ = nullptr; o.bytes_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* get() const { return p_; }
  template <class T>
  T* as() const { return static_cast<T*>(p_); }
  uint64_t bytes() const { return bytes_; }
  void zero();  // on the default stream

 private:
  void* p_ = nullptr;
  uint64_t bytes_ = 0;
};

// Copies n floats from device to host (waits for the work queued before it).
void device_to_host(float* host, const float* device, int64_t n);

// Free and total memory of the current device, and the peak this process saw
// (sampled at each DeviceBuffer allocation: weights, arena and caches are all
// DeviceBuffers; cuBLAS workspaces and kernel scratch are not counted).
struct DeviceMemory {
  uint64_t free_bytes = 0, total_bytes = 0, peak_used_bytes = 0;
};
DeviceMemory device_memory();

}  // namespace ringscan
