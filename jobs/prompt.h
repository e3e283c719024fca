// How summarize wraps a document into a prompt: the checkpoint's ChatML chat
// template (Nemotron-H's <|im_start|>/<|im_end|> turns, thinking turned off),
// whose user turn holds a built-in instruction and the document, or the text of
// a --prompt-file with {document} (and {question}, filled from --question).
// --no-chat-template: the prompt file's text is the whole prompt (base models).
// Template text is tokenized on its own and the document's ids are placed
// between, so a document never merges with the template at token level.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace ringscan {

struct PromptOptions {
  std::string prompt_file;  // the user turn's text, with one "{document}"; empty: the instruction below
  std::string question;     // replaces every "{question}" of the prompt file
  std::string system;       // optional system turn (chat template only)
  bool no_chat_template = false;  // the prompt file is the whole prompt
  std::string instruction = "Summarize the following document in a few sentences.";
};

struct PromptFrame {
  std::vector<int32_t> before, after;  // ids around the document's ids
};

// Throws ringscan::Error when the prompt file lacks {document} (or has it twice), when
// {question} and --question do not come together, or when the checkpoint's chat
// template is missing or not ChatML-style (and --no-chat-template is not given).
PromptFrame make_prompt_frame(const Tokenizer& tok, const PromptOptions& o);

}  // namespace ringscan
