// The summarize job's compute on one rank (jobs/batch_job.cpp's
// generate_data_parallel: a Decoder with continuous batching over the
// engine), on a generated corpus, timed through a DecodeEngine wrapper:
// bench_decode --mode overlap (CPU) and bench_gpu_summarize (GPU) share it.
//   stall   each document's time between two of its tokens (inter-token
//           latency): one decode step, plus whatever ran before it (a whole
//           prefill, or one chunk)
//   ttft    from the start of the run to each document's first token
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "bench_util.h"
#include "runtime/decode.h"

namespace ringscan::bench {

// n documents, prompt lengths a fixed mix: three of four short (short_len/2 ..
// short_len), one in four long (long_len); each asks for max_new/2 ..
// max_new tokens (so that documents leave the batch at different steps).
inline std::vector<GenerationRequest> generated_corpus(int64_t n, int64_t vocab, int64_t short_len, int64_t long_len,
                                                       int64_t max_new) {
  std::vector<GenerationRequest> reqs;
  for (int64_t i = 0; i < n; ++i) {
    GenerationRequest r;
    r.id = static_cast<uint64_t>(i);
    const int64_t len = i % 4 == 3 ? long_len : std::max<int64_t>(1, short_len / 2 + (i * 37) % (short_len / 2 + 1));
    r.prompt = synthetic_ids(len, vocab, i);
    r.max_new_tokens = std::max<int64_t>(1, max_new / 2 + (i * 7) % (max_new / 2 + 1));
    reqs.push_back(std::move(r));
  }
  return reqs;
}

// Forwards to an engine and times each document's tokens.
class TimedEngine final : public DecodeEngine {
 public:
  explicit TimedEngine(DecodeEngine& e) : e_(e), t0_(now()) {}
  std::vector<double> gaps, ttft;  // seconds

  int64_t vocab_size() const override { return e_.vocab_size(); }
  int64_t max_batch() const override { return e_.max_batch(); }
  std::unique_ptr<Sequence> prefill(const std::vector<int32_t>& p, const LogitsSink* s) override {
    return e_.prefill(p, s);
  }
  std::unique_ptr<Sequence> start_prefill(int64_t n) override { return e_.start_prefill(n); }
  void prefill_chunk(Sequence& seq, const int32_t* ids, int64_t n, bool overlap) override {
    e_.prefill_chunk(seq, ids, n, overlap);
  }
  bool enable_prefill_overlap(std::string* why) override { return e_.enable_prefill_overlap(why); }
  int32_t first_token(Sequence& seq, const kernels::SamplingParams& p, uint64_t s, uint64_t k) override {
    const int32_t t = e_.first_token(seq, p, s, k);
    const double at = now();
    ttft.push_back(at - t0_);
    last_token_[&seq] = at;
    return t;
  }
  void step(const int32_t* ids, int64_t n, Sequence* const* seqs, const kernels::SamplingParams* p,
            const uint64_t* s, const uint64_t* k, int32_t* out) override {
    e_.step(ids, n, seqs, p, s, k, out);
    const double t = now();
    for (int64_t i = 0; i < n; ++i) {
      double& last = last_token_[seqs[i]];
      gaps.push_back(t - last);
      last = t;
    }
  }

 private:
  DecodeEngine& e_;
  double t0_;
  std::map<const Sequence*, double> last_token_;  // a pointer freed and reused starts again at its first token
};

struct WorkloadResult {
  double seconds = 0;
  int64_t docs = 0, out_tokens = 0;
  bool overlapped = false;
  std::string refused;  // why not, when the overlap was asked for
  double stall_max_ms = 0, stall_p99_ms = 0, stall_mean_ms = 0, ttft_mean_s = 0, ttft_max_s = 0;
};

inline double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

// chunk 0: whole prefill on admission (the job's default).
inline WorkloadResult run_workload(DecodeEngine& engine, const std::vector<GenerationRequest>& reqs, int batch,
                                   int64_t chunk, bool overlap) {
  TimedEngine timed(engine);
  Decoder d(timed, batch);
  d.set_prefill_chunk(chunk, overlap);
  WorkloadResult r;
  r.overlapped = d.prefill_overlapped();
  r.refused = d.prefill_overlap_refused();
  const double t0 = now();
  for (const auto& q : reqs) d.submit(q);
  for (const auto& g : d.run()) {
    ++r.docs;
    r.out_tokens += static_cast<int64_t>(g.tokens.size());
  }
  r.seconds = now() - t0;
  for (double g : timed.gaps) r.stall_mean_ms += 1e3 * g / static_cast<double>(timed.gaps.size());
  r.stall_max_ms = 1e3 * percentile(timed.gaps, 1.0);
  r.stall_p99_ms = 1e3 * percentile(timed.gaps, 0.99);
  for (double t : timed.ttft) r.ttft_mean_s += t / static_cast<double>(timed.ttft.size());
  r.ttft_max_s = percentile(timed.ttft, 1.0);
  return r;
}

// One JSON line (the fields above, documents/s and output tokens/s).
inline void print_workload(const char* bench, const std::string& extra, int64_t chunk, const WorkloadResult& r) {
  std::printf("{\"bench\": \"%s\", %s\"prefill_chunk\": %lld, \"overlapped\": %s, \"docs\": %lld, "
              "\"out_tokens\": %lld, \"seconds\": %.3f, \"docs_per_s\": %.3f, \"out_tokens_per_s\": %.1f, "
              "\"stall_max_ms\": %.2f, \"stall_p99_ms\": %.2f, \"stall_mean_ms\": %.2f, \"ttft_mean_s\": %.3f, "
              "\"ttft_max_s\": %.3f}\n",
              bench, extra.c_str(), (long long)chunk, r.overlapped ? "true" : "false", (long long)r.docs,
              (long long)r.out_tokens, r.seconds, r.docs / r.seconds, r.out_tokens / r.seconds, r.stall_max_ms,
              r.stall_p99_ms, r.stall_mean_ms, r.ttft_mean_s, r.ttft_max_s);
  std::fflush(stdout);
}

}  // namespace ringscan::bench
