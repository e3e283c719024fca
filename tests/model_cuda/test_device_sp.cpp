// GPU sequence parallel = GPU single rank, under mpirun -np P, over both
// communicators: MPI (exchanges staged through host memory, so ranks may share
// one GPU) and NCCL (device buffers end to end, one GPU per rank: on a node
// with fewer GPUs than ranks the NCCL half is not run, and says so; CI runs it
// on tools/cuda_emu's emulated NCCL with one emulated GPU per rank). Both
// layouts, lengths that are not multiples of P or of the chunk, and L < P
// (more ranks than non-empty segments). fp32 GEMM inputs on both sides, so
// the difference is fp32 round-off (the CPU twin's tolerance, 2e-5
// relative). Every layer's bytes sent equal DESIGN.md §4's formulas
// (tests/runtime/sp_traffic_formulas.h) and nothing else is sent.
// Exits 77 on every rank where no GPU is usable.
#include <cuda_runtime.h>
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "comm/mpi_communicator.h"
#include "comm/mpi_session.h"
#include "comm/nccl_communicator.h"
#include "model/device_model.h"
#include "model/model.h"
#include "runtime/device_sequence_parallel.h"
#include "runtime/segment_exchange.h"
#include "model_cuda/device_sp_test.h"
#include "runtime/sp_traffic_formulas.h"

using namespace ringscan;
using ringscan::test::g_nccl;

// The NCCL communicator over all ranks (null when some node has fewer GPUs than ranks).
comm::NcclCommunicator* ringscan::test::g_nccl = nullptr;

namespace {

std::string fixture(const char* name) { return std::string(RINGSCAN_SOURCE_DIR) + "/tests/fixtures/hf/" + name; }

struct Case {
  const char* fixture;
  const char* comm;  // "mpi" or "nccl"
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.fixture << " over " << c.comm; }
std::string case_name(const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.fixture) + "_" + i.param.comm; }

class DeviceSp : public ::testing::TestWithParam<Case> {};

TEST_P(DeviceSp, EqualsSingleRankAndSendsTheFormulasBytes) {
  auto world = comm::MpiCommunicator::create();
  const bool nccl = std::string(GetParam().comm) == "nccl";
  if (nccl && !g_nccl) GTEST_SKIP() << "NCCL needs one GPU per rank on every node";
  comm::Communicator& exchange = nccl ? static_cast<comm::Communicator&>(*g_nccl) : *world;
  const int P = world->size(), me = world->rank();
  auto model = Model::load(fixture(GetParam().fixture), true);
  const ModelConfig& c = model->config();
  const int64_t D = c.hidden_size, chunk = c.chunk_size;
  DeviceModel dev(*model, DeviceModelOptions{GemmInputs::Fp32, 0});
  if (nccl) g_nccl->set_compute_stream(dev.stream());
  for (int64_t L : {int64_t{1}, static_cast<int64_t>(P) + 1, chunk - 1, chunk + 1, 3 * chunk + 5}) {
    if (L < 1) continue;
    std::vector<int32_t> ids(L);
    for (int64_t i = 0; i < L; ++i) ids[i] = static_cast<int32_t>((i * 7919 + 31) % c.vocab_size);
    // Reference: the whole sequence on this rank.
    std::vector<float> ref;
    DeviceSequence seq = dev.new_sequence(L);
    dev.forward(ids.data(), L, seq, [&](int64_t, int64_t rows, const float* d) {
      std::vector<float> h(rows * D);
      device_to_host(h.data(), d, rows * D);
      ref.insert(ref.end(), h.begin(), h.end());
    });
    double scale = 0;
    for (float x : ref) scale = std::max(scale, double(std::fabs(x)));
    for (LayoutKind kind : {LayoutKind::Contiguous, LayoutKind::Zigzag}) {
      const std::string where = std::string(GetParam().fixture) + " over " + GetParam().comm + " L=" +
                                std::to_string(L) + " P=" + std::to_string(P) + " layout " +
                                (kind == LayoutKind::Zigzag ? "zigzag" : "contiguous");
      SCOPED_TRACE(where);
      exchange.reset_counters();
      DeviceSequenceParallelForward runner(dev, exchange, make_layout(L, P, kind));
      runner.set_measure_exposed(true);
      auto pieces = runner.run([&](const Segment& s) {
        return std::vector<int32_t>(ids.begin() + s.begin, ids.begin() + s.end());
      });
      for (const auto& p : pieces) {
        std::vector<float> got(p.seg.len * D);
        device_to_host(got.data(), p.d_hidden(), got.size());
        double worst = 0;
        for (int64_t i = 0; i < p.seg.len * D; ++i)
          worst = std::max(worst, double(std::fabs(got[i] - ref[p.seg.begin * D + i])));
        EXPECT_LE(worst, 2e-5 * scale + 1e-6) << "segment " << p.segment;
      }
      const SequenceLayout& l = runner.layout();
      uint64_t total = 0;
      for (size_t i = 0; i < c.layers.size(); ++i) {
        const int layer = static_cast<int>(i);
        uint64_t halo = 0, state = 0, ring = 0;
        if (c.layers[i] == LayerKind::Mamba)
          halo = test::expected_halo_bytes(l, me, c), state = test::expected_state_bytes(l, me, c);
        if (c.layers[i] == LayerKind::Attention) ring = test::expected_ring_bytes(l, me, c);
        EXPECT_EQ(exchange.traffic(traffic_label(layer, "halo")).bytes_sent, halo) << "layer " << layer;
        EXPECT_EQ(exchange.traffic(traffic_label(layer, "state")).bytes_sent, state) << "layer " << layer;
        EXPECT_EQ(exchange.traffic(traffic_label(layer, "ring")).bytes_sent, ring) << "layer " << layer;
        total += halo + state + ring;
        EXPECT_GE(runner.exposed_ms_by_layer()[i], 0.0) << "layer " << layer;
      }
      EXPECT_EQ(exchange.total_traffic().bytes_sent, total) << "nothing but halos, states and K/V blocks";
      EXPECT_EQ(runner.exposed_ms_by_layer().size(), c.layers.size());
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, DeviceSp,
                         ::testing::Values(Case{"groups_gqa", "mpi"}, Case{"rope", "mpi"}, Case{"swiglu", "mpi"},
                                           Case{"groups_gqa", "nccl"}, Case{"rope", "nccl"}, Case{"swiglu", "nccl"}),
                         case_name);

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  int rank = 0, count = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  const cudaError_t e = cudaGetDeviceCount(&count);
  // Every rank sees the same machine: they all skip together.
  if (e != cudaSuccess || count == 0) {
    if (rank == 0) std::printf("skipped: no GPU (%s)\n", e != cudaSuccess ? cudaGetErrorString(e) : "no device");
    MPI_Finalize();
    return 77;
  }
  ::testing::InitGoogleTest(&argc, argv);
  // NCCL when every node has a GPU per rank (the communicator refuses otherwise).
  int need = ringscan::comm::local_rank() + 1;
  MPI_Allreduce(MPI_IN_PLACE, &need, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  std::unique_ptr<comm::NcclCommunicator> nccl;
  if (need <= count) nccl = comm::NcclCommunicator::create(MPI_COMM_WORLD);
  else if (rank == 0)
    std::printf("NCCL cases SKIPPED: %d GPU(s) visible, %d rank(s) on a node need one each\n", count, need);
  g_nccl = nccl.get();
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0, any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  nccl.reset();
  MPI_Finalize();
  return any;
}
