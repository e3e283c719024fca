// Prefill once, ask many on one GPU (issue 18's GPU row; bench/ask/run.sh is the
// CPU's): a prefix of --prefix tokens prefilled once on the GPU (its decode state
// kept and downloaded, as `prefill --device cuda` saves it), then Q questions of
// --own ids each decoded together against it (PrefixSharedDecoder on the GPU
// engine: the prefix K/V uploaded once, every question's attention over it in one
// block-attention call per layer and step), answers of --new tokens (no stop ids).
// The same Q questions against a --short-token prefix give the decode cost of Q
// independent answers. One JSON line per Q, then the ratios:
//   ask_vs_independent = (prefill + ask Q) / (prefill + short Q)    [target < 2 at Q = 256]
//   saving = Q x re-prefill / (prefill + ask Q), a re-prefill costed as the
//            prefix's prefill plus one answer over the short prefix.
//   bench_gpu_ask [--model DIR | --preset nano-4b] [--prefix 65536] [--short 128]
//                 [--questions 1,16,256] [--own 24] [--new 200] [--gemm-inputs bf16|fp32]
//   bench_gpu_ask --tiny     the tiny preset, small sizes (the emulator's run: tools/cuda_emu/run.sh model)
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "bench_gpu_model.h"
#include "comm/mpi_communicator.h"
#include "comm/mpi_session.h"
#include "model/device_model.h"
#include "model/model.h"
#include "runtime/device_sequence_parallel.h"
#include "runtime/prefix_decode.h"
#include "runtime/prefix_decode_engine.h"

using namespace ringscan;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void sync() {
  if (cudaDeviceSynchronize() != cudaSuccess) {
    std::fprintf(stderr, "bench_gpu_ask: CUDA failed: %s\n", cudaGetErrorString(cudaGetLastError()));
    std::exit(1);
  }
}

// A prefix of n tokens prefilled on the GPU (one rank), its decode state in host
// form; *seconds: the prefill alone (the download not counted).
SequenceParallelDecodeState prefill(DeviceModel& dev, comm::Communicator& world, int64_t n, int64_t vocab,
                                    double* seconds) {
  const SequenceLayout l = make_layout(n, 1, parse_layout("zigzag"));
  sync();
  const auto t0 = std::chrono::steady_clock::now();
  DeviceSequenceParallelForward sp(dev, world, l);
  sp.set_keep_decode_state(true);
  sp.run([&](const Segment& s) {
    std::vector<int32_t> ids(s.len);
    for (int64_t t = 0; t < s.len; ++t) ids[t] = static_cast<int32_t>(((s.begin + t) * 7919 + 13) % vocab);
    return ids;
  });
  sync();
  *seconds = seconds_since(t0);
  return download_decode_state(dev, sp.take_decode_state());
}

struct AskRun {
  double upload_s = 0, ask_s = 0;
  int64_t tokens = 0;  // own + generated
};

// q questions against `prefix` (copied: each run forks the same state), `batch` at a time.
AskRun ask(PrefixDecodeEngine& engine, comm::Communicator& world, const SequenceParallelDecodeState& prefix, int q,
           int batch, int64_t own, int64_t max_new, int64_t vocab) {
  AskRun r;
  sync();
  auto t0 = std::chrono::steady_clock::now();
  PrefixSharedDecoder decoder(engine, world, prefix, batch);
  sync();
  r.upload_s = seconds_since(t0);
  for (int i = 0; i < q; ++i) {
    GenerationRequest g;
    g.id = static_cast<uint64_t>(i);
    for (int64_t t = 0; t < own; ++t) g.prompt.push_back(static_cast<int32_t>((i * 131 + t * 17 + 5) % vocab));
    g.max_new_tokens = max_new;  // no stop ids: every answer has max_new tokens
    decoder.submit(std::move(g));
  }
  t0 = std::chrono::steady_clock::now();
  for (const GenerationResult& g : decoder.run()) r.tokens += own + static_cast<int64_t>(g.tokens.size());
  sync();
  r.ask_s = seconds_since(t0);
  return r;
}

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) out.push_back(std::max(1, std::atoi(item.c_str())));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  comm::MpiSession mpi(&argc, &argv);
  std::string dir, preset = "nano-4b", gemm = "bf16", questions = "1,16,256";
  int64_t prefix_len = 65536, short_len = 128, own = 24, max_new = 200;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) { std::fprintf(stderr, "bench_gpu_ask: %s needs a value\n", a.c_str()); std::exit(2); }
      return argv[++i];
    };
    if (a == "--model") dir = next();
    else if (a == "--preset") preset = next();
    else if (a == "--prefix") prefix_len = std::atoll(next().c_str());
    else if (a == "--short") short_len = std::atoll(next().c_str());
    else if (a == "--questions") questions = next();
    else if (a == "--own") own = std::atoll(next().c_str());
    else if (a == "--new") max_new = std::atoll(next().c_str());
    else if (a == "--gemm-inputs") gemm = next();
    else if (a == "--tiny") preset = "tiny", prefix_len = 96, short_len = 8, questions = "1,3", own = 3, max_new = 4;
    else { std::fprintf(stderr, "bench_gpu_ask: unknown option %s\n", a.c_str()); return 2; }
  }
  if (gemm != "bf16" && gemm != "fp32") { std::fprintf(stderr, "bench_gpu_ask: --gemm-inputs bf16|fp32\n"); return 2; }
  const std::string gpu = bench::gpu_name_or_exit("bench_gpu_ask");
  auto world = comm::MpiCommunicator::create();
  const std::unique_ptr<Model> model = bench::checkpoint_or_preset(dir, preset);
  const int64_t vocab = model->config().vocab_size;
  DeviceModel dev(*model, DeviceModelOptions(gemm == "fp32" ? GemmInputs::Fp32 : GemmInputs::Bf16));
  auto engine = make_device_prefix_decode_engine(dev, [](comm::Communicator& g) -> comm::Communicator& { return g; });

  double prefill_s = 0, short_prefill_s = 0;
  ask(*engine, *world, prefill(dev, *world, short_len, vocab, &short_prefill_s), 2, 2, own, 2, vocab);  // warm-up
  const SequenceParallelDecodeState shortp = prefill(dev, *world, short_len, vocab, &short_prefill_s);
  const SequenceParallelDecodeState longp = prefill(dev, *world, prefix_len, vocab, &prefill_s);
  const AskRun one_short = ask(*engine, *world, shortp, 1, 1, own, max_new, vocab);
  const double reprefill_s = prefill_s + one_short.ask_s;
  const std::string model_name = dir.empty() ? preset : dir;
  std::printf("{\"bench\": \"gpu_ask_prefill\", \"gpu\": \"%s\", \"model\": \"%s\", \"gemm_inputs\": \"%s\", "
              "\"prefix\": %lld, \"prefill_s\": %.4f, \"tokens_per_s\": %.1f, \"reprefill_per_question_s\": %.4f}\n",
              gpu.c_str(), model_name.c_str(), gemm.c_str(), (long long)prefix_len, prefill_s,
              prefix_len / std::max(prefill_s, 1e-12), reprefill_s);
  for (int q : parse_list(questions)) {
    const int batch = static_cast<int>(std::min<int64_t>(q, engine->max_batch()));
    const AskRun longr = ask(*engine, *world, longp, q, batch, own, max_new, vocab);
    const AskRun shortr = ask(*engine, *world, shortp, q, batch, own, max_new, vocab);
    std::printf("{\"bench\": \"gpu_ask\", \"gpu\": \"%s\", \"model\": \"%s\", \"gemm_inputs\": \"%s\", "
                "\"prefix\": %lld, \"questions\": %d, \"batch\": %d, \"own\": %lld, \"new\": %lld, "
                "\"upload_s\": %.4f, \"ask_s\": %.4f, \"tokens_per_s\": %.1f, \"seconds_per_question\": %.5f, "
                "\"short_ask_s\": %.4f, \"ask_vs_independent\": %.3f, \"saving_vs_reprefill\": %.2f}\n",
                gpu.c_str(), model_name.c_str(), gemm.c_str(), (long long)prefix_len, q, batch, (long long)own,
                (long long)max_new, longr.upload_s, longr.ask_s, longr.tokens / std::max(longr.ask_s, 1e-12),
                longr.ask_s / q, shortr.ask_s, (prefill_s + longr.ask_s) / (prefill_s + shortr.ask_s),
                q * reprefill_s / (prefill_s + longr.ask_s));
  }
  return 0;
}
