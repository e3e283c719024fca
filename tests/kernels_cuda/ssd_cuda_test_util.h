// Shared by the CUDA SSD tests (test_ssd_cuda, test_ssd_mma_cuda,
// test_ssd_stages_cuda): inputs on the device, a scan through any cuda::
// scan entry (the bounds are in kernels/ssd_test_util.h).
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "cuda_test_util.h"
#include "kernels/ssd_test_util.h"
#include "ssd_scan.h"

namespace ringscan::test {

// The inputs in device memory.
struct DeviceSsdInputs {
  DeviceArray<float> x, dt, A, B, C, init;
  explicit DeviceSsdInputs(const SsdInputs& in) : x(in.x), dt(in.dt), A(in.A), B(in.B), C(in.C), init(in.init) {}
};

// A CUDA scan's signature (cuda::ssd_scan, cuda::ssd_scan_bf16).
using CudaSsdScanFn = void (*)(const kernels::SsdShape&, const float*, int64_t, const float*, const float*,
                               const float*, int64_t, const float*, int64_t, const float*, float*, int64_t, float*,
                               const kernels::Workspace&, kernels::GpuStream);

// y (padding holds kSsdYSentinel) and the final state (empty when not asked) of `scan` on the device.
inline SsdOutputs run_cuda_ssd_scan(CudaSsdScanFn scan, const SsdInputs& in, bool with_init, bool with_final = true,
                                    const kernels::Workspace& ws = {}) {
  const DeviceSsdInputs d(in);
  DeviceArray<float> y(std::vector<float>(static_cast<size_t>(in.s.len * in.ld_y), kSsdYSentinel));
  DeviceArray<float> fin(std::vector<float>(with_final ? in.init.size() : 0, std::numeric_limits<float>::quiet_NaN()));
  scan(in.s, d.x.get(), in.ld_x, d.dt.get(), d.A.get(), d.B.get(), in.ld_b, d.C.get(), in.ld_c,
       with_init ? d.init.get() : nullptr, y.get(), in.ld_y, with_final ? fin.get() : nullptr, ws, nullptr);
  return {y.download(), fin.download()};
}

}  // namespace ringscan::test
