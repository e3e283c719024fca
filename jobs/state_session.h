// What `ringscan ask` and `ringscan summarize --state` share: a saved prefill
// state (jobs/prefill_state.h) opened with its model and tokenizer (both
// checked against the state's identity) on the engine --device picks (the CPU
// or the GPUs, runtime/engine.h, whichever engine prefilled the state), each
// question's own ids built from the state's question template, and all
// questions decoded together against the shared prefix (runtime/prefix_decode.h).
#pragma once
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

struct StateSession {
  Json manifest, about;  // manifest.json and its "about"
  std::string model_dir, weights_sha256;
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tok;
  std::unique_ptr<Engine> engine;  // prepared with model: what decodes
  LoadedState loaded;  // its st is moved into the decoder by decode_questions
  double load_seconds = 0;
};

// Collective over `world`. Errors (one sentence, on every rank): not a state,
// another tokenizer or other weights than the state's, a device or --comm this
// run cannot have (Engine's messages), a bad --gemm-inputs.
StateSession open_state_session(const StateSessionOptions& o, comm::Communicator& world);

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

// Collective over `world`: every question (its own ids; request id = its index)
// forks the state and generates, all decoding together. Returns the results in
// the order they finished (on every rank) and the decode's timing in *timing.
// Consumes s.loaded.st and s.loaded.prefix_kv.
std::vector<GenerationResult> decode_questions(StateSession& s, comm::Communicator& world,
                                               const std::vector<std::vector<int32_t>>& own,
                                               const QuestionDecodeOptions& o, DecodeTiming* timing);

}  // namespace ringscan
