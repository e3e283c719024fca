// The summarize job's decoding on one GPU, end to end on a generated corpus
// (decode/summarize_workload.h: the Decoder with continuous batching over the
// GPU engine, as jobs/batch_job.cpp's generate_data_parallel runs it; not
// counted: reading files, tokenizing, the chat template, writing HDF5, which
// the CPU benchmarks measure), with whole prefill, with chunked prefill
// between decode steps, and with the chunks overlapped beside the steps on
// the second stream (no stop ids: each document generates --max-new/2 .. --max-new
// tokens). One JSON line each, then the ratios overlapped / whole.
//   bench_gpu_summarize [--model DIR | --preset nano-4b] [--docs 64] [--batch 16]
//                       [--prompt 512] [--long 8192] [--max-new 64] [--chunk 512]
//   bench_gpu_summarize --tiny     the tiny preset and a small corpus (the
//                                  emulator's run: tools/cuda_emu/run.sh model)
// --preset builds the preset's random checkpoint in host memory (no file).
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench_gpu_model.h"
#include "bench_util.h"
#include "decode/summarize_workload.h"
#include "model/device_model.h"
#include "model/model.h"
#include "runtime/decode_engine.h"

using namespace ringscan;

int main(int argc, char** argv) {
  std::string dir, preset = "nano-4b";
  int64_t docs = 64, batch = 16, prompt = 512, long_len = 8192, max_new = 64, chunk = 512;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) { std::fprintf(stderr, "bench_gpu_summarize: %s needs a value\n", a.c_str()); std::exit(2); }
      return argv[++i];
    };
    if (a == "--model") dir = next();
    else if (a == "--preset") preset = next();
    else if (a == "--docs") docs = std::atoll(next().c_str());
    else if (a == "--batch") batch = std::atoll(next().c_str());
    else if (a == "--prompt") prompt = std::atoll(next().c_str());
    else if (a == "--long") long_len = std::atoll(next().c_str());
    else if (a == "--max-new") max_new = std::atoll(next().c_str());
    else if (a == "--chunk") chunk = std::atoll(next().c_str());
    else if (a == "--tiny") preset = "tiny", docs = 8, batch = 3, prompt = 12, long_len = 40, max_new = 4, chunk = 8;
    else { std::fprintf(stderr, "bench_gpu_summarize: unknown option %s\n", a.c_str()); return 2; }
  }
  const std::string gpu = bench::gpu_name_or_exit("bench_gpu_summarize");
  const std::unique_ptr<Model> model = bench::checkpoint_or_preset(dir, preset);
  DeviceModel dev(*model, DeviceModelOptions{});
  auto engine = make_device_decode_engine(dev);
  const auto reqs = bench::generated_corpus(docs, model->config().vocab_size, prompt, long_len, max_new);
  const std::string extra = "\"gpu\": \"" + gpu + "\", \"model\": \"" +
                            (dir.empty() ? preset : dir) + "\", \"batch\": " + std::to_string(batch) +
                            ", \"prompt\": " + std::to_string(prompt) + ", \"long\": " + std::to_string(long_len) +
                            ", \"max_new\": " + std::to_string(max_new) + ", ";
  // A first pass warms up cuBLAS and captures the decode graphs; not reported.
  bench::run_workload(*engine, bench::generated_corpus(std::min<int64_t>(docs, batch), model->config().vocab_size,
                                                       prompt, prompt, 2),
                      static_cast<int>(batch), 0, false);
  const auto whole = bench::run_workload(*engine, reqs, static_cast<int>(batch), 0, false);
  bench::print_workload("gpu_summarize", extra, 0, whole);
  const auto serial = bench::run_workload(*engine, reqs, static_cast<int>(batch), chunk, false);
  bench::print_workload("gpu_summarize", extra, chunk, serial);
  const auto overlapped = bench::run_workload(*engine, reqs, static_cast<int>(batch), chunk, true);
  bench::print_workload("gpu_summarize", extra, chunk, overlapped);
  if (!overlapped.overlapped)
    std::fprintf(stderr, "bench_gpu_summarize: the overlap was refused: %s\n", overlapped.refused.c_str());
  std::printf("{\"bench\": \"gpu_summarize_ratio\", \"prefill_chunk\": %lld, \"overlapped\": %s, "
              "\"docs_per_s_vs_whole\": %.3f, \"docs_per_s_vs_serial_chunks\": %.3f, \"stall_max_vs_whole\": %.3f, "
              "\"ttft_mean_vs_whole\": %.3f}\n",
              (long long)chunk, overlapped.overlapped ? "true" : "false",
              (overlapped.docs / overlapped.seconds) / (whole.docs / whole.seconds),
              (overlapped.docs / overlapped.seconds) / (serial.docs / serial.seconds),
              overlapped.stall_max_ms / whole.stall_max_ms, overlapped.ttft_mean_s / whole.ttft_mean_s);
  return overlapped.overlapped ? 0 : 1;
}
