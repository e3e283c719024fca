// How summarize wraps a document into a prompt: the checkpoint's ChatML chat
// template (Nemotron-H's <|im_start|>/<|im_end|> turns, thinking turned off)
// around a built-in instruction, or a user's prompt file with {document}.
// Template text is tokenized on its own and the document's ids are placed
// between, so a document never merges with the template at token level.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace ringscan {

struct PromptOptions {
  std::string prompt_file;  // text with one "{document}"; empty: the chat template
  std::string system;       // optional system turn (chat template only)
  std::string instruction = "Summarize the following document in a few sentences.";
};

struct PromptFrame {
  std::vector<int32_t> before, after;  // ids around the document's ids
};

// Throws ringscan::Error when the prompt file lacks {document}, or the
// checkpoint's chat template is not ChatML-style and no prompt file is given.
PromptFrame make_prompt_frame(const Tokenizer& tok, const PromptOptions& o);

}  // namespace ringscan
