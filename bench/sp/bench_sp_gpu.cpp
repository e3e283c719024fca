// GPU sequence parallelism on one long document over P ranks (run under
// mpirun -np P, one GPU per rank for --comm nccl): wall time, tokens/s, bytes
// sent per layer by kind (halo, state, ring), and the exposed communication
// per layer: the time the compute stream waited for an exchange (CUDA events
// around each wait; DeviceSequenceParallelForward::exposed_ms_by_layer), max
// over ranks. Rank 0 prints one JSON line.
//   mpirun -np P bench_sp_gpu --model DIR --tokens N [--layout zigzag|contiguous]
//                             [--comm nccl|mpi] [--repeat 3] [--generate S [--docs B]]
// The first run warms up (NCCL connections, workspaces); the figures are the
// last repeat's. --generate S: then B documents of N tokens are prefilled and
// decoded S tokens each with their KV caches sharded over the ranks
// (ShardedDecoder on the GPU engine, greedy): a second JSON line with decode
// tokens/s (once every document decodes) and the bytes of one step.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "comm/mpi_communicator.h"
#include "comm/mpi_session.h"
#include "comm/nccl_communicator.h"
#include "model/device_model.h"
#include "model/model.h"
#include "runtime/decode.h"
#include "runtime/device_sequence_parallel.h"
#include "runtime/sharded_decode_engine.h"
#include "runtime/segment_exchange.h"

using namespace ringscan;

int main(int argc, char** argv) {
  comm::MpiSession mpi(&argc, &argv);
  std::string dir, layout = "zigzag", comm_name = "nccl";
  int64_t tokens = 4096;
  int repeat = 3, generate = 0, docs = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--model") dir = argv[i + 1];
    else if (a == "--tokens") tokens = std::atoll(argv[i + 1]);
    else if (a == "--layout") layout = argv[i + 1];
    else if (a == "--comm") comm_name = argv[i + 1];
    else if (a == "--repeat") repeat = std::max(1, std::atoi(argv[i + 1]));
    else if (a == "--generate") generate = std::max(0, std::atoi(argv[i + 1]));
    else if (a == "--docs") docs = std::max(1, std::atoi(argv[i + 1]));
    else comm::abort_all("bench_sp_gpu: unknown option " + a);
  }
  if (comm_name != "nccl" && comm_name != "mpi") comm::abort_all("bench_sp_gpu: --comm must be nccl or mpi");
  auto world = comm::MpiCommunicator::create();
  const int P = world->size(), me = world->rank();
  const int local = comm::local_rank();
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) comm::abort_all("bench_sp_gpu: no GPU visible");
  cudaSetDevice(local % devices);
  auto model = Model::load(dir, me != 0);
  const ModelConfig& c = model->config();
  DeviceModel dev(*model, DeviceModelOptions{});
  std::unique_ptr<comm::NcclCommunicator> nccl;
  if (comm_name == "nccl") {
    nccl = comm::NcclCommunicator::create(world->mpi_comm());
    nccl->set_compute_stream(dev.stream());
  }
  comm::Communicator& exchange = nccl ? static_cast<comm::Communicator&>(*nccl) : *world;
  const SequenceLayout l = make_layout(tokens, P, parse_layout(layout));
  const auto document_ids = [&](const Segment& s) {
    std::vector<int32_t> ids(s.len);
    for (int64_t t = 0; t < s.len; ++t) ids[t] = static_cast<int32_t>(((s.begin + t) * 7919 + 13) % c.vocab_size);
    return ids;
  };

  double seconds = 0;
  std::vector<double> exposed;
  for (int rep = 0; rep < repeat; ++rep) {
    exchange.reset_counters();
    world->barrier();
    const auto t0 = std::chrono::steady_clock::now();
    DeviceSequenceParallelForward sp(dev, exchange, l);
    sp.set_measure_exposed(true);
    auto pieces = sp.run(document_ids);
    world->barrier();
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    exposed = sp.exposed_ms_by_layer();
  }

  // Per layer: exposed ms (max over ranks) and bytes sent (sum over ranks).
  const int nl = static_cast<int>(c.layers.size());
  std::vector<float> mine(4 * nl), all(4 * nl * P);
  for (int i = 0; i < nl; ++i) {
    mine[4 * i] = static_cast<float>(exposed[i]);
    mine[4 * i + 1] = static_cast<float>(exchange.traffic(traffic_label(i, "halo")).bytes_sent);
    mine[4 * i + 2] = static_cast<float>(exchange.traffic(traffic_label(i, "state")).bytes_sent);
    mine[4 * i + 3] = static_cast<float>(exchange.traffic(traffic_label(i, "ring")).bytes_sent);
  }
  world->all_gather(mine.data(), mine.size(), all.data());
  if (me == 0) {
    double total_exposed = 0;
    std::string per_layer;
    for (int i = 0; i < nl; ++i) {
      double ms = 0, bytes[3] = {0, 0, 0};
      for (int r = 0; r < P; ++r) {
        ms = std::max(ms, static_cast<double>(all[r * 4 * nl + 4 * i]));
        for (int k = 0; k < 3; ++k) bytes[k] += all[r * 4 * nl + 4 * i + 1 + k];
      }
      total_exposed += ms;
      char buf[256];
      std::snprintf(buf, sizeof buf, "%s{\"layer\": %d, \"kind\": \"%s\", \"exposed_ms\": %.3f, \"halo_bytes\": %.0f, "
                    "\"state_bytes\": %.0f, \"ring_bytes\": %.0f}", i ? ", " : "", i, layer_kind_name(c.layers[i]),
                    ms, bytes[0], bytes[1], bytes[2]);
      per_layer += buf;
    }
    std::printf("{\"ranks\": %d, \"comm\": \"%s\", \"layout\": \"%s\", \"tokens\": %lld, \"seconds\": %.3f, "
                "\"tokens_per_s\": %.1f, \"exposed_comm_ms\": %.3f, \"layers\": [%s]}\n",
                P, comm_name.c_str(), layout.c_str(), static_cast<long long>(tokens), seconds, tokens / seconds,
                total_exposed, per_layer.c_str());
  }
  if (generate > 0) {
    // Every document is admitted (prefilled) in the first step; the last one
    // admitted starts decoding when all do, so its decode time is the batch's.
    auto engine = make_device_sharded_decode_engine(dev, [&](comm::Communicator&) -> comm::Communicator& {
      return exchange;
    });
    ShardedDecoder decoder(*engine, *world, parse_layout(layout), docs);
    for (int d = 0; d < docs; ++d) {
      GenerationRequest r;
      r.id = static_cast<uint64_t>(d);
      r.prompt_length = tokens;
      r.segment_ids = document_ids;
      r.max_new_tokens = generate;
      decoder.submit(std::move(r));
    }
    exchange.reset_counters();
    world->reset_counters();
    const auto results = run_until_idle(decoder);
    double decode_s = 1e300;
    for (const auto& r : results) decode_s = std::min(decode_s, r.decode_seconds);
    double step_bytes = 0;  // one decode step's bytes sent by this rank (the prefills' counters are other labels)
    for (const char* label : {ShardedDecoder::kQueryLabel, ShardedDecoder::kKvLabel, ShardedDecoder::kPartialLabel,
                              ShardedDecoder::kTokenLabel})
      step_bytes += static_cast<double>(exchange.traffic(label).bytes_sent +
                                        (&exchange != world.get() ? world->traffic(label).bytes_sent : 0));
    step_bytes /= std::max(1, generate - 1);
    float all_bytes = static_cast<float>(step_bytes);  // summed over the ranks
    world->all_reduce(&all_bytes, 1, comm::ReduceOp::sum);
    if (me == 0)
      std::printf("{\"decode\": true, \"ranks\": %d, \"comm\": \"%s\", \"docs\": %d, \"prompt_tokens\": %lld, "
                  "\"new_tokens\": %d, \"decode_seconds\": %.3f, \"decode_tokens_per_s\": %.1f, "
                  "\"bytes_per_step\": %.0f}\n",
                  P, comm_name.c_str(), docs, static_cast<long long>(tokens), generate, decode_s,
                  docs * (generate - 1) / std::max(decode_s, 1e-9), static_cast<double>(all_bytes));
  }
  return 0;
}
