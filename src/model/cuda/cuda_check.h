// A failed CUDA runtime call in the GPU engine: a broken device or a bug, named
// by `what` in one Error sentence.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "util/error.h"

namespace ringscan {

inline void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(std::string("CUDA: ") + what + " failed: " + cudaGetErrorString(e));
}

}  // namespace ringscan
