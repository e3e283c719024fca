#include "jobs/prompt.h"

#include <filesystem>

#include "util/error.h"
#include "util/json_util.h"

namespace ringscan {

namespace {

// The prompt file's text before and after {document}, with {question} filled in.
void split_prompt_file(const PromptOptions& o, std::string* before, std::string* after) {
  std::string text = read_text_file(o.prompt_file);
  const std::string mark = "{document}", question = "{question}";
  const size_t at = text.find(mark);
  if (at == std::string::npos || text.find(mark, at + 1) != std::string::npos)
    throw Error(o.prompt_file + " must contain \"{document}\" exactly once (where the document goes)");
  const bool asks = text.find(question) != std::string::npos;
  if (asks && o.question.empty())
    throw Error(o.prompt_file + " contains \"{question}\": give the question with --question TEXT");
  if (!asks && !o.question.empty())
    throw Error("--question is given but " + o.prompt_file + " has no \"{question}\" to put it in");
  *before = text.substr(0, at);
  *after = text.substr(at + mark.size());
  for (std::string* part : {before, after})
    for (size_t q = part->find(question); q != std::string::npos; q = part->find(question, q + o.question.size()))
      part->replace(q, question.size(), o.question);
}

}  // namespace

PromptFrame make_prompt_frame(const Tokenizer& tok, const PromptOptions& o) {
  if (o.no_chat_template && o.prompt_file.empty()) throw Error("--no-chat-template needs --prompt-file (the whole prompt)");
  if (o.prompt_file.empty() && !o.question.empty())
    throw Error("--question needs a --prompt-file with \"{question}\" (where the question goes)");
  // The user's text around the document.
  std::string user_before = o.instruction + "\n\n", user_after;
  if (!o.prompt_file.empty()) split_prompt_file(o, &user_before, &user_after);
  std::string before, after;
  bool bos = false;
  if (o.no_chat_template) {
    before = user_before;
    after = user_after;
    bos = tok.add_bos();
  } else {
    const std::string& tpl = tok.chat_template();
    if (tok.config_path().empty())
      throw Error((std::filesystem::path(tok.source()).parent_path() / "tokenizer_config.json").string() +
                  " is missing, and the prompt comes from its chat template; add it, or give --prompt-file with "
                  "--no-chat-template");
    if (tpl.empty())
      throw Error(tok.config_path() +
                  " has no chat_template to build the prompt from; give --prompt-file with --no-chat-template");
    if (tpl.find("<|im_start|>") == std::string::npos || tpl.find("<|im_end|>") == std::string::npos)
      throw Error(tok.source() +
                  ": the chat template is not ChatML-style (<|im_start|>/<|im_end|>); give --prompt-file with "
                  "--no-chat-template");
    if (!o.system.empty()) before += "<|im_start|>system\n" + o.system + "<|im_end|>\n";
    before += "<|im_start|>user\n" + user_before;
    after = user_after + "<|im_end|>\n<|im_start|>assistant\n";
    // Thinking off: an empty reasoning block, as the family's template writes it.
    if (tpl.find("<think>") != std::string::npos) after += "<think></think>";
  }
  PromptFrame f;
  if (bos && tok.bos_id()) f.before.push_back(*tok.bos_id());
  auto a = tok.encode(before, false), b = tok.encode(after, false);
  f.before.insert(f.before.end(), a.begin(), a.end());
  f.after = b;
  return f;
}

}  // namespace ringscan
