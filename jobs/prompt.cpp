#include "jobs/prompt.h"

#include <filesystem>

#include "util/error.h"
#include "util/json_util.h"

namespace ringscan {

PromptFrame make_prompt_frame(const Tokenizer& tok, const PromptOptions& o) {
  std::string before, after;
  bool bos = false;
  if (!o.prompt_file.empty()) {
    const std::string text = read_text_file(o.prompt_file);
    const std::string mark = "{document}";
    const size_t at = text.find(mark);
    if (at == std::string::npos || text.find(mark, at + 1) != std::string::npos)
      throw Error(o.prompt_file + " must contain \"{document}\" exactly once (where the document goes)");
    before = text.substr(0, at);
    after = text.substr(at + mark.size());
    bos = tok.add_bos();
  } else {
    const std::string& tpl = tok.chat_template();
    if (tok.config_path().empty())
      throw Error((std::filesystem::path(tok.source()).parent_path() / "tokenizer_config.json").string() +
                  " is missing, and the prompt comes from its chat template; add it, or give --prompt-file");
    if (tpl.empty())
      throw Error(tok.config_path() + " has no chat_template to build the prompt from; give --prompt-file");
    if (tpl.find("<|im_start|>") == std::string::npos || tpl.find("<|im_end|>") == std::string::npos)
      throw Error(tok.source() + ": the chat template is not ChatML-style (<|im_start|>/<|im_end|>); give --prompt-file");
    if (!o.system.empty()) before += "<|im_start|>system\n" + o.system + "<|im_end|>\n";
    before += "<|im_start|>user\n" + o.instruction + "\n\n";
    after = "<|im_end|>\n<|im_start|>assistant\n";
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
