#include "runtime/device_select.h"

#ifdef RINGSCAN_WITH_CUDA
#include <cuda_runtime.h>
#endif

#include "util/error.h"

namespace ringscan {

bool built_with_cuda() {
#ifdef RINGSCAN_WITH_CUDA
  return true;
#else
  return false;
#endif
}

bool built_with_nccl() {
#ifdef RINGSCAN_HAVE_NCCL
  return true;
#else
  return false;
#endif
}

namespace {

// The GPU for this rank, or a sentence saying why there is none.
bool find_gpu(int local_rank, DeviceChoice& choice, std::string& why_not) {
#ifdef RINGSCAN_WITH_CUDA
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    why_not = e != cudaSuccess ? std::string("the CUDA runtime reports: ") + cudaGetErrorString(e)
                               : std::string("no CUDA device is visible");
    cudaGetLastError();  // clear the error so later calls do not see it
    return false;
  }
  const int gpu = (local_rank < 0 ? 0 : local_rank) % count;
  cudaDeviceProp prop{};
  cudaError_t s = cudaSetDevice(gpu);
  if (s == cudaSuccess) s = cudaGetDeviceProperties(&prop, gpu);
  if (s == cudaSuccess) s = cudaFree(nullptr);  // creates the context: a broken GPU fails here, not mid-run
  if (s != cudaSuccess) {
    why_not = "CUDA device " + std::to_string(gpu) + " is not usable: " + cudaGetErrorString(s);
    cudaGetLastError();
    return false;
  }
  choice.backend = Backend::Cuda;
  choice.gpu = gpu;
  choice.gpus_visible = count;
  choice.label = "cuda:" + std::to_string(gpu) + " (" + prop.name + ")";
  return true;
#else
  (void)local_rank;
  (void)choice;
  why_not = "this ringscan was built without CUDA (configure with -DRINGSCAN_WITH_CUDA=ON where nvcc is installed)";
  return false;
#endif
}

}  // namespace

DeviceChoice choose_device(const std::string& option, int local_rank) {
  DeviceChoice c;
  c.label = "cpu";
  if (option == "cpu") return c;
  if (option != "auto" && option != "cuda")
    throw Error("--device " + option + " is not one of auto, cpu, cuda");
  std::string why_not;
  if (find_gpu(local_rank, c, why_not)) return c;
  if (option == "cuda") throw Error("--device cuda: no usable GPU: " + why_not);
  c.why_cpu = why_not;
  return c;
}

}  // namespace ringscan
