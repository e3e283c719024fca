// The GPU prefill's decode state in host form (download_decode_state,
// runtime/cuda/device_saved_state.cpp: what `prefill --device cuda` saves)
// equals the CPU sequence-parallel prefill's (SequenceParallelForward::
// take_decode_state, what `prefill --device cpu` saves), under mpirun -np P
// over both communicators (MPI: ranks may share one GPU; NCCL: one GPU per
// rank), both layouts, L < P, L across chunks. Every rank: its K/V shard per
// attention layer (same rows); the driver: every Mamba layer's conv history
// and SSM state, the last hidden row; the same driver and length.
// Tolerances, as max |gpu - cpu| over a tensor against its largest |cpu|
// element (`scale`): fp32 GEMM inputs and cache: 1e-4 * scale + 1e-6 (fp32
// round-off of ~10 layers: test_device_sp's 2e-5 between GPU runs, and the
// GPU and CPU GEMMs sum in other orders); bf16 GEMM inputs and cache: 5e-2 *
// scale (jobs_check.py's estimate, ~1.2% relative on a random model's
// activations, and the cache's own bf16 rounding, 2^-9). A lost shard, a
// wrong row order or another layer's state is off by ~100% of scale.
// Linked into test_device_sp (its main).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "comm/mpi_communicator.h"
#include "model/device_model.h"
#include "model/model.h"
#include "model_cuda/device_sp_test.h"
#include "runtime/device_sequence_parallel.h"
#include "runtime/sequence_parallel.h"

using namespace ringscan;

namespace {

using test::fixture;
using Case = test::CommCase;

// max |got - want| / (largest |want|), and a size mismatch as infinity.
double relative_worst(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) return INFINITY;
  double worst = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    worst = std::max(worst, double(std::fabs(got[i] - want[i])));
    scale = std::max(scale, double(std::fabs(want[i])));
  }
  return worst / (scale + 1e-6);
}

class DeviceSavedState : public ::testing::TestWithParam<Case> {};

TEST_P(DeviceSavedState, DownloadedStateEqualsTheCpuPrefills) {
  auto world = comm::MpiCommunicator::create();
  const bool nccl = std::string(GetParam().comm) == "nccl";
  if (nccl && !test::g_nccl) GTEST_SKIP() << "NCCL needs one GPU per rank on every node";
  comm::Communicator& exchange = nccl ? static_cast<comm::Communicator&>(*test::g_nccl) : *world;
  const int P = world->size(), me = world->rank();
  const double tol = GetParam().gemm == GemmInputs::Fp32 ? 1e-4 : 5e-2;
  double measured = 0;
  for (const char* name : {"groups_gqa", "rope"}) {
    auto model = Model::load(fixture(name), true);
    const ModelConfig& c = model->config();
    DeviceModel dev(*model, DeviceModelOptions{GetParam().gemm, 0});
    if (nccl) test::g_nccl->set_compute_stream(dev.stream());
    for (int64_t L : {std::max<int64_t>(P - 1, 1), 2 * c.chunk_size + 3}) {
      std::vector<int32_t> ids(L);
      for (int64_t i = 0; i < L; ++i) ids[i] = static_cast<int32_t>((i * 7919 + 31) % c.vocab_size);
      auto segment_ids = [&](const Segment& s) { return std::vector<int32_t>(ids.begin() + s.begin, ids.begin() + s.end()); };
      for (LayoutKind kind : {LayoutKind::Contiguous, LayoutKind::Zigzag}) {
        SCOPED_TRACE(std::string(name) + " L=" + std::to_string(L) + " P=" + std::to_string(P) + " " + layout_name(kind));
        const SequenceLayout layout = make_layout(L, P, kind);
        SequenceParallelForward cpu_runner(*model, *world, layout);
        cpu_runner.set_keep_decode_state(true);
        cpu_runner.run(segment_ids);
        const SequenceParallelDecodeState want = cpu_runner.take_decode_state();
        DeviceSequenceParallelForward gpu_runner(dev, exchange, layout);
        gpu_runner.set_keep_decode_state(true);
        gpu_runner.run(segment_ids);
        const SequenceParallelDecodeState got = download_decode_state(dev, gpu_runner.take_decode_state());
        EXPECT_EQ(got.driver, want.driver);
        EXPECT_EQ(got.length, want.length);
        EXPECT_EQ(got.state.position, want.state.position);
        ASSERT_EQ(got.state.layers.size(), c.layers.size());
        for (size_t li = 0; li < c.layers.size(); ++li) {
          const LayerCache &g = got.state.layers[li], &w = want.state.layers[li];
          if (c.layers[li] == LayerKind::Attention) {
            EXPECT_EQ(g.kv_rows, layout.tokens_of(me)) << "layer " << li;
            EXPECT_EQ(g.kv_rows, w.kv_rows) << "layer " << li;
            for (double r : {relative_worst(g.k, w.k), relative_worst(g.v, w.v)}) {
              EXPECT_LE(r, tol) << "K/V of layer " << li;
              measured = std::max(measured, r);
            }
          } else if (c.layers[li] == LayerKind::Mamba && me == want.driver) {
            for (double r : {relative_worst(g.conv_history, w.conv_history), relative_worst(g.ssm_state, w.ssm_state)}) {
              EXPECT_LE(r, tol) << "Mamba state of layer " << li;
              measured = std::max(measured, r);
            }
          }
        }
        if (me == want.driver) {
          const double r = relative_worst(got.last_hidden, want.last_hidden);
          EXPECT_LE(r, tol) << "last hidden row";
          measured = std::max(measured, r);
        }
      }
    }
  }
  if (me == 0) std::printf("[saved state] %s: worst |gpu - cpu| / scale = %.2e (tolerance %.0e)\n", GetParam().comm,
                           measured, tol);
}

INSTANTIATE_TEST_SUITE_P(Comms, DeviceSavedState,
                         ::testing::Values(Case{"mpi", GemmInputs::Fp32}, Case{"nccl", GemmInputs::Fp32},
                                           Case{"mpi", GemmInputs::Bf16}),
                         test::comm_case_name);

}  // namespace
