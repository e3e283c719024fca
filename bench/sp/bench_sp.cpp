// Strong scaling of one long document over P ranks (run under mpirun -np P):
// wall time, tokens/s, seconds blocked in communication, bytes sent per layer
// by kind (halo, state, ring), peak resident memory, and the causal attention
// work (query-key pairs) each rank does. Rank 0 prints one JSON line.
//   mpirun -np P bench_sp --model DIR --tokens N [--layout zigzag|contiguous]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "comm/mpi_communicator.h"
#include "kernels/blas_runtime.h"
#include "runtime/sequence_parallel.h"

using namespace ringscan;

int main(int argc, char** argv) {
  reexec_with_fast_blas_if_needed(argv);
  comm::MpiSession mpi(&argc, &argv);
  std::string dir, layout = "zigzag";
  int64_t tokens = 4096;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--model") dir = argv[i + 1];
    else if (a == "--tokens") tokens = std::atoll(argv[i + 1]);
    else if (a == "--layout") layout = argv[i + 1];
  }
  auto world = comm::MpiCommunicator::create();
  const int P = world->size(), me = world->rank();
  auto model = Model::load(dir, true);
  const ModelConfig& c = model->config();
  SequenceLayout l = make_layout(tokens, P, parse_layout(layout));

  world->barrier();
  world->reset_counters();
  auto t0 = std::chrono::steady_clock::now();
  SequenceParallelForward sp(*model, *world, l);
  auto pieces = sp.run([&](const Segment& s) {
    std::vector<int32_t> ids(s.len);
    for (int64_t t = 0; t < s.len; ++t) ids[t] = static_cast<int32_t>(((s.begin + t) * 7919 + 13) % c.vocab_size);
    return ids;
  });
  world->barrier();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // Per-rank figures, then max/mean over ranks.
  double sent[3] = {0, 0, 0};  // halo, state, ring, summed over layers
  const char* kinds[3] = {"halo", "state", "ring"};
  for (size_t i = 0; i < c.layers.size(); ++i)
    for (int k = 0; k < 3; ++k) sent[k] += world->traffic(traffic_label(static_cast<int>(i), kinds[k])).bytes_sent;
  double wait = 0;
  for (const auto& [label, t] : world->traffic_by_label()) wait += t.wait_seconds;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double attn_pairs = 0;
  for (const auto& s : l.segments)
    if (s.owner == me) attn_pairs += static_cast<double>(s.len) * (2 * s.begin + s.len + 1) / 2;
  float mine[6] = {static_cast<float>(wait), static_cast<float>(ru.ru_maxrss / 1024.0), static_cast<float>(attn_pairs),
                   static_cast<float>(sent[0]), static_cast<float>(sent[1]), static_cast<float>(sent[2])};
  std::vector<float> all(6 * P);
  world->all_gather(mine, 6, all.data());
  if (me == 0) {
    auto stat = [&](int k, bool max) {
      double v = max ? 0 : 0;
      for (int r = 0; r < P; ++r) v = max ? std::max(v, static_cast<double>(all[r * 6 + k])) : v + all[r * 6 + k] / P;
      return v;
    };
    double amin = 1e300, amax = 0;
    for (int r = 0; r < P; ++r) amin = std::min(amin, (double)all[r * 6 + 2]), amax = std::max(amax, (double)all[r * 6 + 2]);
    const double nm = std::max<int64_t>(1, c.count(LayerKind::Mamba)), na = std::max<int64_t>(1, c.count(LayerKind::Attention));
    std::printf("{\"ranks\": %d, \"layout\": \"%s\", \"tokens\": %lld, \"seconds\": %.3f, \"tokens_per_s\": %.1f, "
                "\"comm_wait_s_max\": %.3f, \"peak_rss_mib_max\": %.1f, \"attn_work_max_over_min\": %.3f, "
                "\"halo_bytes_per_mamba_layer\": %.0f, \"state_bytes_per_mamba_layer\": %.0f, \"ring_bytes_per_attn_layer\": %.0f}\n",
                P, layout.c_str(), (long long)tokens, seconds, tokens / seconds, stat(0, true), stat(1, true),
                amin > 0 ? amax / amin : 0.0, stat(3, false) / nm, stat(4, false) / nm, stat(5, false) / na);
  }
  return 0;
}
