// What the multi-rank GPU test program (test_device_sp's main) shares with its files.
#pragma once
#include "comm/nccl_communicator.h"

namespace ringscan::test {
// The NCCL communicator over all ranks (null when some node has fewer GPUs than
// ranks, e.g. two ranks sharing one GPU: the NCCL cases then skip).
extern comm::NcclCommunicator* g_nccl;
}  // namespace ringscan::test
