// Which engine a rank runs (DESIGN §3): `--device auto|cpu|cuda`. auto takes
// the GPU when this build has CUDA and a usable GPU is visible, else the CPU,
// and says why; cuda without a usable GPU is an error that says so. A rank's
// GPU is its local rank modulo the GPUs visible on its node.
#pragma once
#include <string>

namespace ringscan {

enum class Backend { Cpu, Cuda };

struct DeviceChoice {
  Backend backend = Backend::Cpu;
  int gpu = -1;         // CUDA device index (made current by choose_device)
  int gpus_visible = 0;  // CUDA devices this rank sees
  std::string label;    // "cpu" or "cuda:0 (NVIDIA H200)": logs and the output's attributes
  std::string why_cpu;  // for auto on the CPU: why not a GPU
};

// option: "auto", "cpu" or "cuda" (anything else is an Error naming the
// option). local_rank: comm::local_rank(). Throws Error for cuda without a GPU.
DeviceChoice choose_device(const std::string& option, int local_rank);

// True when this binary was built with the CUDA engine.
bool built_with_cuda();
// True when it also has NCCL (--comm nccl).
bool built_with_nccl();

}  // namespace ringscan
