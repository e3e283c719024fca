// Per-op GPU time of the engine (bench_gpu's breakdown), from CUDA events
// recorded between ops on the stream: mark(label) attributes the time since
// the previous mark to `label`. No synchronisation until report(); events are
// pooled and reused, so a profiled run allocates only while the pool grows.
// Off unless a DeviceModel is given one (DeviceModel::set_profiler).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "kernels/gpu_op.h"

struct CUevent_st;

namespace ringscan {

class DeviceProfiler {
 public:
  DeviceProfiler() = default;
  ~DeviceProfiler();
  DeviceProfiler(const DeviceProfiler&) = delete;
  DeviceProfiler& operator=(const DeviceProfiler&) = delete;

  // An event on `stream` (the engine's) after the work queued so far.
  void mark(const char* label, kernels::GpuStream stream);
  // Waits for the last mark, then milliseconds per label summed over the
  // marks since the previous report (or construction); starts a new period.
  std::map<std::string, double> report();

 private:
  std::vector<CUevent_st*> pool_;
  std::vector<const char*> labels_;  // labels_[i]: the time up to event i (labels_[0] unused)
  size_t used_ = 0;
};

}  // namespace ringscan
