// The options of a batch job as values: the command line (src/cli) fills them
// from argv, a test may fill them directly. Their meaning is in docs/cli.md.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "jobs/job_spec.h"
#include "jobs/prompt.h"
#include "kernels/sampling.h"

namespace ringscan {

struct JobOptions {
  std::vector<std::string> inputs, include, exclude;
  std::string model_dir, out, mode = "file", layout = "zigzag", device = "auto", comm = "auto";
  std::string input_format = "auto", jsonl_id = "id", jsonl_text = "text";  // io/discovery.h
  bool no_gitignore = false, overwrite = false, repair = false, quiet = false;
  int sp = 0;
  int threads = 0;  // CPU threads per rank (0: OMP_NUM_THREADS, else every core)
  int64_t max_tokens = 0;
  // score: a sliding window of at most `window` tokens moved by `stride`
  // (runtime/score_windows.h) for documents longer than the window; 0: none.
  int64_t window = 0, stride = 0;
  double memory_gib = 0;
  double progress_interval = 10;
  // summarize
  PromptOptions prompt;
  int64_t max_new_tokens = 128;
  kernels::SamplingParams sampling;
  int batch = 16;
  // Chunked prefill (runtime/decode.h, Decoder::set_prefill_chunk): prompt
  // tokens per decode step (0: each prompt whole on admission); overlap: the
  // chunk beside the decode step where the engine can (the GPU's second stream).
  int64_t prefill_chunk = 0;
  bool prefill_overlap = true;
  bool ignore_eos = false;
  // summarize --state (jobs/summarize_state.h): a saved prefill state instead of
  // --input, and the per-file prompt ({file}: each file's path).
  std::string state;
  std::string prompt_template = "Summarize {file} in the context of this repository.";
  // With --state: the GPU engine's GEMM inputs (runtime/engine.h, set_gemm_inputs).
  std::string gemm_inputs = "bf16";
  // Recorded in the output's attributes (not part of the run identity).
  std::string command_line;
};

// Throws ringscan::Error naming the first option out of range for a run on `ranks` ranks
// (values only: files and the model are checked when they are read).
void check_job_options(const JobSpec& spec, const JobOptions& o, int ranks);
// Its parts that `ask` shares (its own options): generation and progress lines.
void check_decode_options(int64_t max_new_tokens, int batch, const kernels::SamplingParams& sampling);
void check_progress_interval(double seconds);

}  // namespace ringscan
