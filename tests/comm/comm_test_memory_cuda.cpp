// Device memory for the NCCL communicator tests (CUDA builds only).
#include <cuda_runtime_api.h>

#include <string>

#include "comm/mpi_session.h"
#include "comm_test_env.h"

namespace ringscan::comm::test {

namespace {
void check(cudaError_t e, const char* call) {
  if (e != cudaSuccess) fail_here(std::string("comm test: ") + call + " failed: " + cudaGetErrorString(e));
}
}  // namespace

void* space_alloc(std::size_t bytes) {
  void* p = nullptr;
  check(cudaMalloc(&p, bytes), "cudaMalloc");
  return p;
}
void space_free(void* p) { check(cudaFree(p), "cudaFree"); }
// Synchronous copies on the legacy default stream: ordered with the communicator's work.
void space_upload(void* dst, const void* src, std::size_t bytes) {
  check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
}
void space_download(void* dst, const void* src, std::size_t bytes) {
  check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy");
}

}  // namespace ringscan::comm::test
