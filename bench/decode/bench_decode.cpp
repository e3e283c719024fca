// Generation speed through the decoders' own API (runtime/decode.h).
//   bench_decode --model DIR --mode batch [--batches 1,2,4,...,64] [--prompt 128] [--steps 16]
//     decode tokens/s per batch size on one rank: B documents admitted (prefill
//     and first token, not timed), then `steps` timed decode steps of B tokens
//     each (decode_step + lm_head + draw). One JSON line per batch size.
//   [mpirun -np P] bench_decode --model DIR --mode ttft [--lengths 512,...,8192] [--steps 8] [--layout zigzag]
//     time to first token vs prompt length (prefill + lm_head + draw of one
//     document), then the time per decode step that follows; one rank:
//     Decoder, P ranks: ShardedDecoder (sequence-parallel prefill, sharded KV
//     cache) with the decode bytes sent per step. Rank 0 prints JSON lines.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

#include "bench_util.h"
#include "comm/mpi_communicator.h"
#include "kernels/blas_runtime.h"
#include "runtime/decode.h"

using namespace ringscan;

using bench::now;
using bench::parse_list;

namespace {
GenerationRequest request(uint64_t id, std::vector<int32_t> prompt, int64_t max_new) {
  GenerationRequest r;
  r.id = id;
  r.prompt = std::move(prompt);
  r.max_new_tokens = max_new;
  return r;
}

const char* threads() {
  const char* t = std::getenv("OMP_NUM_THREADS");
  return t ? t : "default";
}

void batch_mode(Model& model, const std::vector<int64_t>& batches, int64_t prompt, int64_t steps) {
  const int64_t V = model.config().vocab_size;
  double single = 0;
  for (int64_t B : batches) {
    Decoder d(model, static_cast<int>(B));
    for (int64_t b = 0; b < B; ++b) d.submit(request(b, bench::synthetic_ids(prompt, V, b), steps + 2));
    d.step();  // admits all B (prefill + first token) and runs one decode step
    const double t0 = now();
    for (int64_t s = 0; s < steps; ++s) d.step();
    const double sec = now() - t0;
    const double tps = B * steps / sec;
    if (B == 1) single = tps;
    std::printf("{\"mode\": \"batch\", \"batch\": %lld, \"prompt\": %lld, \"steps\": %lld, \"threads\": \"%s\", "
                "\"ms_per_step\": %.2f, \"tokens_per_s\": %.1f, \"speedup_vs_batch1\": %s}\n",
                (long long)B, (long long)prompt, (long long)steps, threads(), 1e3 * sec / steps, tps,
                single > 0 ? std::to_string(tps / single).c_str() : "null");
    std::fflush(stdout);
  }
}

void ttft_mode(Model& model, comm::Communicator& world, const std::vector<int64_t>& lengths, int64_t steps,
               LayoutKind layout) {
  const int P = world.size();
  const int64_t V = model.config().vocab_size;
  for (int64_t L : lengths) {
    GenerationRequest r = request(1, bench::synthetic_ids(L, V, 7), 1 + steps);
    GenerationResult res;
    world.barrier();
    world.reset_counters();
    if (P == 1) {
      Decoder d(model, 1);
      d.submit(r);
      res = d.run().at(0);
    } else {
      ShardedDecoder d(model, world, layout, 1);
      d.submit(r);
      res = d.run().at(0);
    }
    uint64_t decode_bytes = 0;
    for (const auto& [label, t] : world.traffic_by_label())
      if (label.rfind("decode.", 0) == 0 && label != "decode.handoff") decode_bytes += t.bytes_sent;
    int64_t total = static_cast<int64_t>(decode_bytes);
    world.all_reduce(&total, 1, comm::ReduceOp::sum);
    // Slowest rank's view of the first token.
    float ttft = static_cast<float>(res.first_token_seconds);
    world.all_reduce(&ttft, 1, comm::ReduceOp::max);
    if (world.rank() == 0)
      std::printf("{\"mode\": \"ttft\", \"ranks\": %d, \"layout\": \"%s\", \"prompt\": %lld, \"threads\": \"%s\", "
                  "\"ttft_s\": %.3f, \"prefill_tokens_per_s\": %.1f, \"decode_steps\": %lld, \"ms_per_decode_step\": %.2f, "
                  "\"decode_bytes_per_step_all_ranks\": %.0f}\n",
                  P, P == 1 ? "none" : layout_name(layout), (long long)L, threads(), ttft, L / ttft, (long long)steps,
                  steps ? 1e3 * res.decode_seconds / steps : 0.0, steps ? double(total - (P - 1) * 4) / steps : 0.0);  // less the first token's broadcast
    std::fflush(stdout);
  }
}
}  // namespace

int main(int argc, char** argv) {
  reexec_with_fast_blas_if_needed(argv);
  comm::MpiSession mpi(&argc, &argv);
  std::string dir, mode = "batch", layout = "zigzag", batches = "1,2,4,8,16,32,64", lengths = "512,1024,2048,4096,8192";
  int64_t prompt = 128, steps = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--model") dir = v;
    else if (a == "--mode") mode = v;
    else if (a == "--batches") batches = v;
    else if (a == "--lengths") lengths = v;
    else if (a == "--prompt") prompt = std::atoll(v.c_str());
    else if (a == "--steps") steps = std::atoll(v.c_str());
    else if (a == "--layout") layout = v;
    else { std::fprintf(stderr, "unknown option %s\n", a.c_str()); return 2; }
  }
  if (dir.empty() || (mode != "batch" && mode != "ttft")) {
    std::fprintf(stderr, "usage: bench_decode --model DIR --mode batch|ttft [--batches ..] [--prompt N] [--lengths ..] [--steps N] [--layout zigzag|contiguous]\n");
    return 2;
  }
  auto world = comm::MpiCommunicator::create();
  auto model = Model::load(dir, true);
  if (mode == "batch") {
    if (world->size() != 1) { std::fprintf(stderr, "--mode batch runs on one rank\n"); return 2; }
    batch_mode(*model, parse_list(batches), prompt, steps < 0 ? 16 : steps);
  } else {
    ttft_mode(*model, *world, parse_list(lengths), steps < 0 ? 8 : steps, parse_layout(layout));
  }
  return 0;
}
