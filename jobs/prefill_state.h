// ringscan prefill: one document (a codebase in --mode codebase) run
// sequence-parallel over the ranks, its state saved for `ringscan ask`
// (runtime/saved_state.h, docs/state-files.md).
//
// The prefix is the chat template's opening of a user turn, an instruction,
// and the document's ids; each question later continues that user turn with
// "\n\n" + its text and closes it (the suffix ids, recorded in the state), so
// prefix + question is exactly the prompt summarize would build around the
// document with the question after it. --no-chat-template: BOS (when the
// tokenizer adds one) + document, and questions as "\n\nQuestion: ...\nAnswer:".
#pragma once
#include <string>
#include <vector>

#include "comm/communicator.h"

namespace ringscan {

struct PrefillStateOptions {
  std::string model_dir, out, mode = "codebase", layout = "zigzag", device = "auto", comm = "auto";
  std::string gemm_inputs = "bf16";  // the GPU engine's (Engine::set_gemm_inputs); the CPU multiplies fp32
  std::vector<std::string> inputs, include, exclude;
  bool no_gitignore = false, overwrite = false, quiet = false, no_chat_template = false;
  int threads = 0;
  int64_t max_tokens = 0;
  std::string kv_dtype = "fp32";  // how the state stores K/V rows: fp32 or bf16
  std::string instruction = "Answer the questions that follow about this document.";
  std::string system;
  std::string command_line;
};

// Collective over `world`; returns the exit status. Errors: ringscan::Error (collective).
int run_prefill_state(const PrefillStateOptions& o, comm::Communicator& world);

}  // namespace ringscan
