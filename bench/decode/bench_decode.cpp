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
//   bench_decode --model DIR --mode overlap [--docs 24] [--batch 8] [--prompt 64]
//                [--long 1024] [--steps 16] [--chunk 64]
//     the summarize job's decoding (decode/summarize_workload.h) of a generated
//     corpus (3 of 4 prompts up to --prompt tokens, 1 of 4 --long; --steps/2 ..
//     --steps new tokens each), with whole
//     prefill and then with --chunk-token chunks between steps, in one run:
//     the stall of active documents between two tokens (max, p99, mean),
//     time to first token, documents/s, output tokens/s, and the ratios
//     chunked / whole. (On the CPU the chunks interleave with the steps; on a
//     GPU they also overlap them: bench_gpu_summarize.)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

#include "bench_util.h"
#include "comm/mpi_communicator.h"
#include "kernels/blas_runtime.h"
#include "decode/summarize_workload.h"
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
void overlap_mode(Model& model, int64_t docs, int batch, int64_t prompt, int64_t long_len, int64_t steps,
                  int64_t chunk) {
  CpuDecodeEngine engine(model);
  const auto reqs = bench::generated_corpus(docs, model.config().vocab_size, prompt, long_len, steps);
  const std::string extra = "\"threads\": \"" + std::string(threads()) + "\", \"batch\": " + std::to_string(batch) +
                            ", \"prompt\": " + std::to_string(prompt) + ", \"long\": " + std::to_string(long_len) + ", ";
  const bench::WorkloadResult whole = bench::run_workload(engine, reqs, batch, 0, false);
  bench::print_workload("decode_overlap", extra, 0, whole);
  const bench::WorkloadResult chunked = bench::run_workload(engine, reqs, batch, chunk, true);
  bench::print_workload("decode_overlap", extra, chunk, chunked);
  std::printf("{\"bench\": \"decode_overlap_ratio\", \"prefill_chunk\": %lld, \"stall_max\": %.3f, \"stall_p99\": %.3f, "
              "\"ttft_mean\": %.3f, \"out_tokens_per_s\": %.3f}\n",
              (long long)chunk, chunked.stall_max_ms / whole.stall_max_ms, chunked.stall_p99_ms / whole.stall_p99_ms,
              chunked.ttft_mean_s / whole.ttft_mean_s,
              (chunked.out_tokens / chunked.seconds) / (whole.out_tokens / whole.seconds));
  std::fflush(stdout);
}
}  // namespace

int main(int argc, char** argv) {
  reexec_with_fast_blas_if_needed(argv);
  comm::MpiSession mpi(&argc, &argv);
  std::string dir, mode = "batch", layout = "zigzag", batches = "1,2,4,8,16,32,64", lengths = "512,1024,2048,4096,8192";
  int64_t prompt = -1, steps = -1, docs = 24, long_len = 1024, chunk = 64, batch = 8;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--model") dir = v;
    else if (a == "--mode") mode = v;
    else if (a == "--batches") batches = v;
    else if (a == "--lengths") lengths = v;
    else if (a == "--prompt") prompt = std::atoll(v.c_str());
    else if (a == "--steps") steps = std::atoll(v.c_str());
    else if (a == "--layout") layout = v;
    else if (a == "--docs") docs = std::atoll(v.c_str());
    else if (a == "--batch") batch = std::atoll(v.c_str());
    else if (a == "--long") long_len = std::atoll(v.c_str());
    else if (a == "--chunk") chunk = std::atoll(v.c_str());
    else { std::fprintf(stderr, "unknown option %s\n", a.c_str()); return 2; }
  }
  if (dir.empty() || (mode != "batch" && mode != "ttft" && mode != "overlap")) {
    std::fprintf(stderr, "usage: bench_decode --model DIR --mode batch|ttft|overlap [--batches ..] [--prompt N] [--lengths ..] [--steps N] [--layout zigzag|contiguous] [--docs N --batch B --long N --chunk N]\n");
    return 2;
  }
  auto world = comm::MpiCommunicator::create();
  auto model = Model::load(dir, true);
  if (mode == "batch") {
    if (world->size() != 1) { std::fprintf(stderr, "--mode batch runs on one rank\n"); return 2; }
    batch_mode(*model, parse_list(batches), prompt < 0 ? 128 : prompt, steps < 0 ? 16 : steps);
  } else if (mode == "overlap") {
    if (world->size() != 1) { std::fprintf(stderr, "--mode overlap runs on one rank\n"); return 2; }
    overlap_mode(*model, docs, static_cast<int>(batch), prompt < 0 ? 64 : prompt, long_len, steps < 0 ? 16 : steps, chunk);
  } else {
    ttft_mode(*model, *world, parse_list(lengths), steps < 0 ? 8 : steps, parse_layout(layout));
  }
  return 0;
}
