// What `ringscan ask` and `ringscan summarize --state` share: a saved prefill
// state (jobs/prefill_state.h) opened with its model and tokenizer (both
// checked against the state's identity) on the engine --device picks (the CPU
// or the GPUs, runtime/engine.h, whichever engine prefilled the state), each
// question's own ids built from the state's question template, and all
// questions decoded together against the shared prefix (runtime/prefix_decode.h).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "kernels/sampling.h"
#include "model/model.h"
#include "runtime/decode.h"
#include "runtime/engine.h"
#include "runtime/saved_state.h"
#include "tokenizer/tokenizer.h"

namespace ringscan {

struct StateSessionOptions {
  std::string job;  // for log lines and messages: "ask", "summarize"
  std::string state, model_dir, device = "auto";  // model_dir "": the one the state names
  std::string comm = "auto", gemm_inputs = "bf16";  // Engine's --comm and --gemm-inputs (GPU engine)
  int threads = 0;
  bool quiet = false;
};

// The session options of a job's own (AskOptions, JobOptions: the same member names).
template <class Options>
StateSessionOptions session_options(const Options& o, const std::string& job) {
  return {job, o.state, o.model_dir, o.device, o.comm, o.gemm_inputs, o.threads, o.quiet};
}

struct StateSession {
  StateSessionOptions options;  // what it was opened with (the state, the job's name for logs)
  Json manifest, about;  // manifest.json and its "about"
  std::string model_dir, weights_sha256;
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tok;
  std::unique_ptr<Engine> engine;  // what decodes (agreed on; prepared by load_session_state)
  // Loaded by decode_questions (load_session_state), not by open_state_session: a
  // rerun that finds its answers complete reads no shard. Its st is moved into the decoder.
  LoadedState loaded;
  double load_seconds = 0;
  int64_t prefix_tokens() const { return manifest.at("n_tokens").get<int64_t>(); }
  int saved_ranks() const { return manifest.at("ranks").get<int>(); }
};

// Collective over `world`: the manifest, model and tokenizer (the state's data files
// are not read yet). Errors (one sentence, on every rank): not a state, another
// tokenizer or other weights than the state's, a device or --comm this run cannot
// have (Engine's messages), a bad --gemm-inputs.
StateSession open_state_session(const StateSessionOptions& o, comm::Communicator& world);

// Collective over `world`: prepares the engine (on GPUs: uploads the weights) and
// loads this rank's part of the state into s.loaded (checked, re-sharded when
// saved on another number of ranks); logs what it loaded.
void load_session_state(StateSession& s, comm::Communicator& world);

// A question's own ids, appended to the prefix: the state's question template
// (docs/state-files.md) around `text`.
std::vector<int32_t> question_ids(const StateSession& s, const std::string& text);

struct QuestionDecodeOptions {
  int64_t max_new_tokens = 128;
  int batch = 64;
  kernels::SamplingParams sampling;
  bool ignore_eos = false;
};

// The decode's wall time, and this process's CPU time over it (all its threads):
// on a shared machine the CPU time of a one-thread rank is the steadier measure.
struct DecodeTiming {
  double seconds = 0, cpu_seconds = 0;
};

// This process's CPU time so far (CLOCK_PROCESS_CPUTIME_ID), in seconds.
double process_cpu_seconds();

// Called on every rank after each decode step that finished questions, with
// those results: a job stores them as they come, so that a killed run keeps them.
using FinishedQuestions = std::function<void(const std::vector<GenerationResult>&)>;

// Collective over `world`: every question (its own ids; request id = its index)
// forks the state and generates, all decoding together. Returns the results in
// the order they finished (on every rank) and the decode's timing in *timing;
// `finished` (if set) sees them step by step. Loads the state (load_session_state)
// and consumes it.
std::vector<GenerationResult> decode_questions(StateSession& s, comm::Communicator& world,
                                               const std::vector<std::vector<int32_t>>& own,
                                               const QuestionDecodeOptions& o, DecodeTiming* timing,
                                               const FinishedQuestions& finished = {});

}  // namespace ringscan
