// Builds without CUDA: no GPU backend. choose_device never picks one there
// (device_select.cpp), so reaching this is a bug that must say so, not fall
// back to the CPU unnoticed.
#include "runtime/backend.h"
#include "util/error.h"

namespace ringscan {

std::unique_ptr<ComputeBackend> make_gpu_backend(const Model&, const DeviceChoice&, bool, bool) {
  throw Error("the GPU engine was asked for, but this ringscan was built without CUDA "
              "(configure with -DRINGSCAN_WITH_CUDA=ON where nvcc is installed)");
}

}  // namespace ringscan
