#include "model/device_profiler.h"

#include <cuda_runtime.h>

#include "model/cuda/device_model_impl.h"

namespace ringscan {

DeviceProfiler::~DeviceProfiler() {
  for (CUevent_st* e : pool_) cudaEventDestroy(e);
}

void DeviceProfiler::mark(const char* label, kernels::GpuStream stream) {
  if (used_ == pool_.size()) {
    cudaEvent_t e = nullptr;
    cuda_check(cudaEventCreate(&e), "profiler event");
    pool_.push_back(e);
  }
  cuda_check(cudaEventRecord(pool_[used_], stream), "profiler event");
  if (labels_.size() <= used_) labels_.resize(used_ + 1);
  labels_[used_++] = label;
}

std::map<std::string, double> DeviceProfiler::report() {
  std::map<std::string, double> ms;
  if (used_ > 0) cuda_check(cudaEventSynchronize(pool_[used_ - 1]), "profiler event");
  for (size_t i = 1; i < used_; ++i) {
    float t = 0.f;
    cuda_check(cudaEventElapsedTime(&t, pool_[i - 1], pool_[i]), "profiler event");
    ms[labels_[i]] += t;
  }
  used_ = 0;
  return ms;
}

}  // namespace ringscan
