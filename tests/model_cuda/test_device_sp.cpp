// GPU sequence parallel = GPU single rank, under mpirun -np P with every rank
// on the same GPU (the runner exchanges through host memory and MPI, so ranks
// may share one device): both layouts, lengths that are not multiples of P
// or of the chunk, and L < P. fp32 GEMM inputs on both sides, so the
// difference is fp32 round-off (the CPU twin's tolerance, 2e-5 relative).
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
#include "model/device_model.h"
#include "model/model.h"
#include "runtime/device_sequence_parallel.h"

using namespace ringscan;

namespace {

std::string fixture(const char* name) { return std::string(RINGSCAN_SOURCE_DIR) + "/tests/fixtures/hf/" + name; }

class DeviceSp : public ::testing::TestWithParam<const char*> {};

TEST_P(DeviceSp, EqualsSingleRank) {
  auto world = comm::MpiCommunicator::create();
  const int P = world->size();
  auto model = Model::load(fixture(GetParam()), true);
  const ModelConfig& c = model->config();
  const int64_t D = c.hidden_size, chunk = c.chunk_size;
  DeviceModel dev(*model, DeviceModelOptions{GemmInputs::Fp32, 0});
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
      SCOPED_TRACE(testing::Message() << GetParam() << " L=" << L << " P=" << P << " layout "
                                      << (kind == LayoutKind::Zigzag ? "zigzag" : "contiguous"));
      DeviceSequenceParallelForward runner(dev, *world, make_layout(L, P, kind));
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
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, DeviceSp, ::testing::Values("groups_gqa", "rope", "swiglu"));

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
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0, any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return any;
}
