// ringscan ask: questions against a saved prefill state (jobs/prefill_state.h).
// Every question forks the state, appends its own ids (the state's question
// template around its text) and generates; all questions decode together
// (runtime/prefix_decode.h) on the engine --device picks (the GPU by default
// where every rank has one), and the answers go to a resumable result file,
// one /documents row per question (jobs/state_answers.h; docs/hdf5-schema.md,
// "ringscan ask").
//
// Questions: JSONL, one object per line with "question" (text) and optionally
// "id" (a string naming it; default: its line number).
#pragma once
#include <string>

#include "comm/communicator.h"
#include "kernels/sampling.h"

namespace ringscan {

struct AskOptions {
  std::string state, questions, out, model_dir, device = "auto";  // model_dir "": the one the state names
  std::string comm = "auto", gemm_inputs = "bf16";  // the GPU engine's (runtime/engine.h)
  int64_t max_new_tokens = 128;
  int batch = 64;
  int threads = 0;
  double progress_interval = 10;
  kernels::SamplingParams sampling;
  bool ignore_eos = false, overwrite = false, repair = false, quiet = false;
  std::string command_line;
};

// Collective over `world`; returns the exit status. Errors: ringscan::Error (collective).
int run_ask(const AskOptions& o, comm::Communicator& world);

}  // namespace ringscan
