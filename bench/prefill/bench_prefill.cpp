// Single-rank prefill throughput: tokens/s, model FLOPs utilisation against a
// given peak, and peak resident memory. Prints one JSON line.
//   bench_prefill --model DIR --tokens N [--repeat R] [--peak-gflops G] [--logits]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/blas_runtime.h"
#include "model/model.h"
#include "model/model_flops.h"

using namespace ringscan;

int main(int argc, char** argv) {
  reexec_with_fast_blas_if_needed(argv);
  std::string dir;
  int64_t tokens = 1024;
  int repeat = 2;
  double peak = 0;
  bool with_logits = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() { return i + 1 < argc ? argv[++i] : (std::fprintf(stderr, "%s needs a value\n", a.c_str()), std::exit(2), ""); };
    if (a == "--model") dir = next();
    else if (a == "--tokens") tokens = std::atoll(next());
    else if (a == "--repeat") repeat = std::atoi(next());
    else if (a == "--peak-gflops") peak = std::atof(next());
    else if (a == "--logits") with_logits = true;
    else { std::fprintf(stderr, "unknown option %s\n", a.c_str()); return 2; }
  }
  if (dir.empty()) { std::fprintf(stderr, "usage: bench_prefill --model DIR --tokens N [--repeat R] [--peak-gflops G] [--logits]\n"); return 2; }
  auto model = Model::load(dir, true);
  const ModelConfig& c = model->config();
  std::vector<int32_t> ids(tokens);
  for (int64_t i = 0; i < tokens; ++i) ids[i] = static_cast<int32_t>((i * 7919 + 13) % c.vocab_size);
  std::vector<float> hidden(tokens * c.hidden_size);
  std::vector<float> logits(with_logits ? std::min<int64_t>(tokens, 256) * c.vocab_size : 0);

  double best = 1e30;
  for (int r = 0; r < repeat; ++r) {
    InferenceState st = model->new_state();
    auto t0 = std::chrono::steady_clock::now();
    model->forward(ids.data(), tokens, st, hidden.data());
    if (with_logits)  // the lm_head over every position, in blocks of 256 rows
      for (int64_t r0 = 0; r0 < tokens; r0 += 256)
        model->logits(hidden.data() + r0 * c.hidden_size, std::min<int64_t>(256, tokens - r0), logits.data());
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, s);
  }
  ModelConfig flops_cfg = c;
  double flops = prefill_flops(flops_cfg, tokens);
  if (!with_logits) flops -= 2.0 * c.hidden_size * c.vocab_size * tokens;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  const char* threads = std::getenv("OMP_NUM_THREADS");
  std::printf("{\"model\": \"%s\", \"tokens\": %lld, \"threads\": \"%s\", \"seconds\": %.4f, \"tokens_per_s\": %.1f, "
              "\"blas\": \"%s\", \"gflops\": %.2f, \"mfu\": %s, \"peak_rss_mib\": %.1f, \"checkpoint_mib\": %.1f}\n",
              dir.c_str(), (long long)tokens, threads ? threads : "default", best, tokens / best, blas_core_name(), flops / best / 1e9,
              peak > 0 ? std::to_string(flops / best / 1e9 / peak).c_str() : "null", ru.ru_maxrss / 1024.0,
              model->checkpoint().total_bytes() / 1048576.0);
  return 0;
}
