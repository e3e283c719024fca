// What the multi-rank GPU test program (test_device_sp's main) shares with its files.
#pragma once
#include <gtest/gtest.h>

#include <memory>
#include <ostream>
#include <string>

#include "comm/mpi_communicator.h"
#include "comm/nccl_communicator.h"
#include "model/device_model.h"

namespace ringscan::test {
// The NCCL communicator over all ranks (null when some node has fewer GPUs than
// ranks, e.g. two ranks sharing one GPU: the NCCL cases then skip).
extern comm::NcclCommunicator* g_nccl;

// A checkpoint of tests/fixtures/hf.
inline std::string fixture(const char* name) {
  return std::string(RINGSCAN_SOURCE_DIR) + "/tests/fixtures/hf/" + name;
}

// A case of the multi-rank GPU tests: how the GPU engine exchanges (the MPI
// group through host memory, or NCCL on device buffers) and its GEMM inputs.
struct CommCase {
  const char* comm;  // "mpi" or "nccl"
  GemmInputs gemm;
};
inline void PrintTo(const CommCase& c, std::ostream* os) {
  *os << c.comm << (c.gemm == GemmInputs::Fp32 ? " fp32" : " bf16");
}
inline std::string comm_case_name(const ::testing::TestParamInfo<CommCase>& i) {
  return std::string(i.param.comm) + (i.param.gemm == GemmInputs::Fp32 ? "_fp32" : "_bf16");
}

// A test over the world group, its GPU engine exchanging over exchange():
// the world itself (MPI) or g_nccl (skipped where NCCL cannot run).
class CommCaseTest : public ::testing::TestWithParam<CommCase> {
 protected:
  void SetUp() override {
    world_ = comm::MpiCommunicator::create();
    nccl_ = std::string(GetParam().comm) == "nccl";
    if (nccl_ && !g_nccl) GTEST_SKIP() << "NCCL needs one GPU per rank on every node";
  }
  comm::Communicator& exchange() { return nccl_ ? static_cast<comm::Communicator&>(*g_nccl) : *world_; }
  // The exchange for an engine of `dev`: NCCL then orders its work on dev's stream.
  comm::Communicator& exchange_for(DeviceModel& dev) {
    if (nccl_) g_nccl->set_compute_stream(dev.stream());
    return exchange();
  }
  std::unique_ptr<comm::MpiCommunicator> world_;
  bool nccl_ = false;
};
}  // namespace ringscan::test
