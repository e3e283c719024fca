// Device buffers for the CUDA kernel tests: upload host vectors, download
// results, and device copies of test weights (WeightView data in device memory).
#pragma once
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "kernels/kernel_test_util.h"
#include "weight_view.h"

namespace ringscan::test {

inline void cuda_ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

// An owning device array of T.
template <class T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(size_t n) : n_(n) {
    if (n_) cuda_ok(cudaMalloc(&p_, n_ * sizeof(T)), "cudaMalloc");
  }
  explicit DeviceArray(const std::vector<T>& host) : DeviceArray(host.size()) { upload(host); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  DeviceArray(DeviceArray&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr; o.n_ = 0; }
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }
  ~DeviceArray() { if (p_) cudaFree(p_); }

  T* get() const { return p_; }
  size_t size() const { return n_; }
  void upload(const std::vector<T>& host) {
    if (host.size() != n_) throw std::runtime_error("DeviceArray::upload: size mismatch");
    if (n_) cuda_ok(cudaMemcpy(p_, host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice), "upload");
  }
  // Waits for the kernels on the default stream (cudaMemcpy synchronises) and
  // surfaces their asynchronous faults here.
  std::vector<T> download() const {
    std::vector<T> host(n_);
    if (n_) cuda_ok(cudaMemcpy(host.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost), "download");
    return host;
  }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

// A TestWeight's storage copied to the device, in its own dtype.
class DeviceWeight {
 public:
  explicit DeviceWeight(const TestWeight& w) : dtype_(w.dtype), rows_(w.rows), cols_(w.cols) {
    if (w.dtype == DType::F32)
      f32_ = DeviceArray<float>(w.values);
    else
      half_ = DeviceArray<uint16_t>(w.half);
  }
  WeightView view() const {
    const void* p = dtype_ == DType::F32 ? static_cast<const void*>(f32_.get())
                                         : static_cast<const void*>(half_.get());
    return WeightView{dtype_, p, rows_, cols_};
  }

 private:
  DType dtype_;
  int64_t rows_, cols_;
  DeviceArray<float> f32_;
  DeviceArray<uint16_t> half_;
};

}  // namespace ringscan::test
