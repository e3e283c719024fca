// The NCCL state scan's inputs_ready (comm/communicator.h, StateScanArgs): the
// scan waits for that event of the compute stream, and not for the work queued
// on it afterwards, which therefore runs beside the scan (a Mamba layer's SSD
// outputs, runtime/cuda/device_sequence_parallel.cpp). NCCL builds only.
//
// Whether the later work ran before the scan finished is only observable under
// tools/cuda_emu's deferred streams (a stream's work runs when something needs
// it); on a GPU it races, and only the results are checked.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "comm/mpi_session.h"
#include "comm/nccl_communicator.h"
#include "comm_test_env.h"

namespace ringscan::comm::test {
namespace {

void ok(cudaError_t e, const char* call) {
  if (e != cudaSuccess) fail_here(std::string("comm test: ") + call + " failed: " + cudaGetErrorString(e));
}

// Every rank's segment: decay 1/2 per head, state k + 1 everywhere (rank k):
// H_r = sum_{k<r} 2^-(r-1-k) (k+1), exact in fp32.
float expected_incoming(int r) {
  float h = 0;
  for (int k = 0; k < r; ++k) h = 0.5f * h + static_cast<float>(k + 1);
  return h;
}

// Runs the scan with its inputs produced on a compute stream before `ready`
// (or, ready == false, with no event), then one more op on that stream.
// Returns the incoming state and whether that later op had run when the scan
// returned (emulator only; true elsewhere).
struct ScanRun {
  std::vector<float> incoming;
  bool later_ran_before_return = true;
};
ScanRun scan_after_producer(bool use_ready) {
  auto* nccl = dynamic_cast<NcclCommunicator*>(&world());
  if (!nccl) fail_here("comm test: the NCCL test binary's world is not an NcclCommunicator");
  const int nh = 3;
  const std::size_t se = 5, n = nh * se;
  const int me = world().rank();
  const std::vector<float> a(nh, 0.5f), S(n, static_cast<float>(me + 1));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  SpaceBuffer<float> staged_a(a), staged_S(S), d_a(nh, nan), d_S(n, nan), H(n, nan), later(1, nan);
  cudaStream_t compute;
  cudaEvent_t ready;
  ok(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  ok(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), "cudaEventCreateWithFlags");
  nccl->set_compute_stream(compute);
  // The producer: the scan's inputs, written on the compute stream.
  ok(cudaMemcpyAsync(d_a.data(), staged_a.data(), nh * 4, cudaMemcpyDeviceToDevice, compute), "cudaMemcpyAsync");
  ok(cudaMemcpyAsync(d_S.data(), staged_S.data(), n * 4, cudaMemcpyDeviceToDevice, compute), "cudaMemcpyAsync");
  ok(cudaEventRecord(ready, compute), "cudaEventRecord");
  ok(cudaMemsetAsync(later.data(), 0, 4, compute), "cudaMemsetAsync");  // the work after the inputs
  StateScanArgs args;
  args.n_heads = nh;
  args.state_elems = se;
  args.decay = d_a.data();
  args.state = d_S.data();
  args.prefix_state = H.data();
  args.inputs_ready = use_ready ? ready : nullptr;
  world().exclusive_state_scan(args);
  ScanRun r;
#ifdef RINGSCAN_CUDA_EMU
  std::uint32_t bits = 0;  // read without a CUDA call (emulated device memory is host memory): no flush
  std::memcpy(&bits, later.data(), 4);
  r.later_ran_before_return = bits == 0;
#endif
  ok(cudaStreamSynchronize(compute), "cudaStreamSynchronize");
  nccl->set_compute_stream(nullptr);
  r.incoming = H.download();
  cudaEventDestroy(ready);
  cudaStreamDestroy(compute);
  return r;
}

TEST(StateScanOverlap, WaitsForInputsReadyAndNotForLaterWork) {
  if (!is_nccl()) GTEST_SKIP() << "device streams: the NCCL backend only";
  const ScanRun r = scan_after_producer(/*use_ready=*/true);
  EXPECT_EQ(r.incoming, std::vector<float>(r.incoming.size(), expected_incoming(world().rank())));
#ifdef RINGSCAN_CUDA_EMU
  EXPECT_FALSE(r.later_ran_before_return) << "the scan waited for compute work queued after inputs_ready";
#endif
}

TEST(StateScanOverlap, WithoutAnEventItWaitsForEverythingQueued) {
  if (!is_nccl()) GTEST_SKIP() << "device streams: the NCCL backend only";
  const ScanRun r = scan_after_producer(/*use_ready=*/false);
  EXPECT_EQ(r.incoming, std::vector<float>(r.incoming.size(), expected_incoming(world().rank())));
  EXPECT_TRUE(r.later_ran_before_return);
}

}  // namespace
}  // namespace ringscan::comm::test
